"""Content-addressed blob storage through Django's storage API (SPEC 3.5).

An upload streams into a staging file while it is hashed, in bounded memory. Only a complete
upload whose SHA-256 matches what the client expected is moved under its storage key
(`blobs/ab/cd/<sha256>`); the key is made here, never from a user's path. Whatever goes
wrong, the staging file is removed.
"""

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from registry.errors import Invalid, TooLarge

CHUNK_SIZE = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def artifact_storage() -> Storage:
    return storages["artifacts"]


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def normalise_sha256(value: str | None) -> str | None:
    """Accept 'abc…' or 'sha256:abc…' (any case); refuse anything that is not 64 hex digits."""
    if value is None or value == "":
        return None
    digest = value.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise Invalid(f"expected SHA-256 must be 64 hexadecimal digits, got {value!r}")
    return digest


def iter_chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        for chunk in source:
            if chunk:
                yield bytes(chunk)
        return
    while chunk := read(CHUNK_SIZE):
        yield chunk


@dataclass
class StagedUpload:
    path: Path
    sha256: str
    size: int


@contextlib.contextmanager
def staged_upload(
    source: BinaryIO | Iterable[bytes],
    *,
    expected_sha256: str | None = None,
    max_size: int | None = None,
) -> Iterator[StagedUpload]:
    """Stream `source` into a staging file, hashing as it goes; always remove the file after.

    Refuses (Invalid) a SHA-256 that does not match, and (TooLarge) more than `max_size`
    bytes, reading no further than one chunk past the limit.
    """
    expected = normalise_sha256(expected_sha256)
    limit = settings.ARTIFACT_MAX_SIZE if max_size is None else max_size
    staging_dir = Path(settings.ARTIFACT_TMP_DIR)
    staging_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=staging_dir)
    path = Path(name)
    try:
        hasher = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_chunks(source):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the artifact is larger than the limit of {limit} bytes")
                hasher.update(chunk)
                out.write(chunk)
        digest = hasher.hexdigest()
        if expected is not None and digest != expected:
            raise Invalid(
                f"checksum mismatch: the upload's SHA-256 is {digest}, the client expected "
                f"{expected}; nothing was stored",
                details={"expected": expected, "actual": digest},
            )
        yield StagedUpload(path=path, sha256=digest, size=size)
    finally:
        path.unlink(missing_ok=True)


def place_blob(staged: StagedUpload) -> bool:
    """Put the staged bytes under their key; True if this call wrote them (they were absent).

    Content-addressed, so bytes already at the key are the same bytes and stay as they are.
    """
    storage = artifact_storage()
    key = blob_key(staged.sha256)
    if isinstance(storage, FileSystemStorage):
        target = Path(storage.path(key))
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One rename when the staging folder is on the same filesystem: no second copy.
            os.replace(staged.path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(staged.path, partial)
            os.replace(partial, target)
        return True
    if storage.exists(key):
        return False
    with staged.path.open("rb") as handle:
        saved = storage.save(key, File(handle, name=key))
    if saved != key:
        storage.delete(saved)
        raise RuntimeError(f"artifact storage saved {key} as {saved}; it must overwrite in place")
    return True


def remove_blob_bytes(sha256: str) -> None:
    storage = artifact_storage()
    key = blob_key(sha256)
    if storage.exists(key):
        storage.delete(key)


def open_blob(sha256: str) -> File:
    return artifact_storage().open(blob_key(sha256), "rb")


def blob_exists(sha256: str) -> bool:
    return artifact_storage().exists(blob_key(sha256))


def hash_stored_blob(sha256: str) -> tuple[str, int]:
    """Re-read stored bytes: their actual SHA-256 and size."""
    hasher = hashlib.sha256()
    size = 0
    with open_blob(sha256) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def stored_blob_keys() -> Iterator[str]:
    """Every SHA-256 that has bytes under blobs/, for finding orphans."""
    storage = artifact_storage()

    def walk(prefix: str) -> Iterator[str]:
        try:
            dirs, files = storage.listdir(prefix)
        except FileNotFoundError:
            return
        for name in files:
            if len(name) == 64 and set(name) <= _HEX:
                yield name
        for directory in dirs:
            yield from walk(f"{prefix}/{directory}")

    yield from walk("blobs")
