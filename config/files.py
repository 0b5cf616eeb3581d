"""The modes of what the server writes to disk: folders 0750 and files 0640 (the owner reads
and writes, its group reads, nobody else), whatever the process's umask. Settings use this
module too, so it imports nothing of Django."""

from pathlib import Path

DIR_MODE = 0o750
FILE_MODE = 0o640


def make_dirs(path: Path | str) -> Path:
    """Make `path` and its missing parents, each with DIR_MODE. A folder that exists already
    (/tmp, a mount point, one made meanwhile by another process) is left as it is."""
    path = Path(path)
    missing = []
    level = path
    while not level.exists():
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        folder.chmod(DIR_MODE)  # mkdir's mode is cut by the umask
    return path
