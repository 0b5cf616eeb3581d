"""Content-addressed blob storage through Django's storage API (SPEC 3.5).

An upload is hashed as it streams in, in bounded memory, and kept apart until it is whole:
on the filesystem in a staging file under ARTIFACT_TMP_DIR, on S3 in a multipart upload not
yet completed, or a temporary object (registry/s3.py). Only a complete upload whose size and
SHA-256 match what the client declared and expected is placed under its storage key
(`blobs/ab/cd/<sha256>`: made here, never from a user's path), by one rename, or on S3 by
completing the upload there or a copy on the S3 server. Whatever goes wrong, the staging
file, temporary object or unfinished upload goes. Folders made here get mode 0750 and blobs
on the filesystem 0640 (config/files.py); a bucket that does not exist is Unavailable
(503), not a failure of the server. With ARTIFACT_DIRECT_IO on, the filesystem's staging
file and large downloads use O_DIRECT (registry/directio.py).
"""

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from config.files import FILE_MODE, make_dirs
from registry import directio, s3
from registry.errors import Invalid
from registry.hashed import Hashed
from registry.s3 import storage_errors

CHUNK_SIZE = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def artifact_storage() -> Storage:
    return storages["artifacts"]


def on_filesystem(storage: Storage) -> bool:
    return isinstance(storage, FileSystemStorage)


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


@dataclass(frozen=True)
class StagedUpload:
    """A complete, checked upload not yet under its key: in the staging file `path` on the
    filesystem, or the `upload` on S3."""

    sha256: str
    size: int
    path: Path | None = None
    upload: s3.Upload | None = None


def check_received(
    sha256: str, size: int, *, expected: str | None, expected_size: int | None
) -> None:
    """Refuse (Invalid) a body of another size than declared, or another SHA-256 than
    expected."""
    if expected_size is not None and size != expected_size:
        raise Invalid(
            f"the upload was {size} bytes where {expected_size} were declared: "
            f"{'it was cut off' if size < expected_size else 'it ran over'}, and nothing "
            "was stored",
            details={"declared": expected_size, "received": size},
        )
    if expected is not None and sha256 != expected:
        raise Invalid(
            f"checksum mismatch: the upload's SHA-256 is {sha256}, the client expected "
            f"{expected}; nothing was stored",
            details={"expected": expected, "actual": sha256},
        )


@contextlib.contextmanager
def staged_upload(
    source: BinaryIO | Iterable[bytes],
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    max_size: int | None = None,
) -> Iterator[StagedUpload]:
    """Stream `source` into a staging file (or on S3, an upload not yet placed), hashing as
    it goes; always remove it after.

    Refuses (Invalid) a SHA-256 that does not match and a size other than `expected_size`
    (the body a client declared, cut off or overlong), and (TooLarge) more than `max_size`
    bytes, reading no further than one chunk past the limit.
    """
    expected = normalise_sha256(expected_sha256)
    check = partial(check_received, expected=expected, expected_size=expected_size)
    limit = settings.ARTIFACT_MAX_SIZE if max_size is None else max_size
    storage = artifact_storage()
    if not on_filesystem(storage):
        # A declared checksum names the blob's key: the upload goes there, and is completed
        # only when placed.
        name = blob_key(expected) if expected else None
        chunks = iter_chunks(source)
        with s3.uploaded_object(storage, chunks, limit=limit, check=check, name=name) as upload:
            yield StagedUpload(sha256=upload.sha256, size=upload.size, upload=upload)
        return
    fd, name = tempfile.mkstemp(prefix="upload-", dir=make_dirs(settings.ARTIFACT_TMP_DIR))
    path = Path(name)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # the staging file becomes the blob by a rename
            write = directio.write_staging_file if settings.ARTIFACT_DIRECT_IO else _write
            sha256, size = write(fd, iter_chunks(source), limit)
        finally:
            os.close(fd)
        check(sha256, size)
        yield StagedUpload(sha256=sha256, size=size, path=path)
    finally:
        path.unlink(missing_ok=True)


def _write(fd: int, chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    """Hash `chunks` while writing them to `fd`: (SHA-256, size). TooLarge past `limit`."""
    hashed = Hashed(chunks, limit)
    for chunk in hashed:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
    return hashed.digest, hashed.size


def place_blob(staged: StagedUpload) -> bool:
    """Put the staged bytes under their key; True if this call wrote them (they were absent).

    Content-addressed, so bytes already at the key are the same bytes and stay as they are.
    """
    storage = artifact_storage()
    key = blob_key(staged.sha256)
    if not on_filesystem(storage):
        with storage_errors():
            if storage.exists(key):
                return False
        staged.upload.place(key)
        return True
    target = Path(storage.path(key))
    if target.exists():
        return False
    make_dirs(target.parent)
    try:
        os.replace(staged.path, target)  # one rename: the staging folder is on this disk
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # The staging folder is on another filesystem: a copy beside the key, then a rename.
        partial_copy = target.with_name(target.name + ".partial")
        shutil.copyfile(staged.path, partial_copy)
        partial_copy.chmod(FILE_MODE)
        os.replace(partial_copy, target)
    return True


def remove_blob_bytes(sha256: str) -> None:
    storage = artifact_storage()
    key = blob_key(sha256)
    if storage.exists(key):
        storage.delete(key)


def open_blob(sha256: str) -> File:
    with storage_errors():
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


@dataclass(frozen=True)
class Unfinished:
    """What an upload that never finished left (a server killed midway; never an artifact,
    since no row is written before the whole body is in): a staging file or `.partial`
    copy (`path`), or on S3 a multipart upload in progress (`key` and `upload_id`) or a
    temporary object (`key`). `age`: seconds since it was last written."""

    name: str
    age: float
    path: Path | None = None
    key: str | None = None
    upload_id: str | None = None


def unfinished_uploads() -> Iterator[Unfinished]:
    """Each unfinished upload: the files in ARTIFACT_TMP_DIR (which holds nothing else),
    `.partial` copies beside blobs, and on S3 what is under `uploads/`."""
    now = time.time()
    paths: list[Path] = []
    staging = Path(settings.ARTIFACT_TMP_DIR)
    if staging.is_dir():
        paths.extend(p for p in staging.iterdir() if p.is_file())
    storage = artifact_storage()
    if on_filesystem(storage):
        blobs = Path(storage.path("blobs"))
        if blobs.is_dir():
            paths.extend(blobs.rglob("*.partial"))
    for path in sorted(paths):
        try:
            yield Unfinished(name=str(path), age=now - path.stat().st_mtime, path=path)
        except FileNotFoundError:
            continue  # finished or removed meanwhile
    if on_filesystem(storage):
        return
    with storage_errors():
        for key, upload_id, written in s3.unfinished(storage):
            kind = " (multipart upload)" if upload_id else ""
            yield Unfinished(
                name=f"s3://{storage.bucket_name}/{key}{kind}",
                age=now - written.timestamp(),
                key=key,
                upload_id=upload_id,
            )


def remove_unfinished(item: Unfinished) -> None:
    if item.path is not None:
        item.path.unlink(missing_ok=True)
    else:
        s3.remove_unfinished(artifact_storage(), item.key, item.upload_id)
