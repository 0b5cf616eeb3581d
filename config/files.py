"""The modes of what the server writes to disk: folders 0750 and files 0640 (the owner reads
and writes, its group reads, nobody else), whatever the process's umask, and the folder it
writes in by default (VAR_DIR). Settings and gunicorn's configuration use this module too, so
it imports nothing of Django."""

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


def default_var_dir() -> Path:
    """Where the server writes when VAR_DIR is not set: var/ in the checkout (beside
    manage.py, as `make run` expects), else var/ in the current folder. An installed wheel
    lives in site-packages, which an upgrade replaces and the server's user may not write:
    the current folder is the service's working directory (or the operator's shell's)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "manage.py").is_file():
        return checkout / "var"
    return Path.cwd() / "var"
