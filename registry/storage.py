"""Content-addressed blob storage through Django's storage API (SPEC 3.5).

An upload streams into a staging file while it is hashed, in bounded memory. Only a complete
upload whose SHA-256 matches what the client expected is moved under its storage key
(`blobs/ab/cd/<sha256>`); the key is made here, never from a user's path. Whatever goes
wrong, the staging file is removed.
"""

import contextlib
import errno
import fcntl
import hashlib
import mmap
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


_ALIGN = 4096  # a multiple of every disk's logical block size
_DIRECT_BUFFER = 4 * 1024 * 1024


class _StagingFile:
    """The staging file's writer. Where the filesystem allows it (Linux, not tmpfs) and
    ARTIFACT_DIRECT_IO is on, it writes with O_DIRECT, in aligned 4 MiB blocks from a
    page-aligned buffer, so that a large upload does not first fill the page cache: handing
    out fresh page-cache memory is what bounded uploads (docs/operations.md). The last
    block is padded to the alignment and the file cut back to its size. If the kernel
    refuses direct I/O at any point, the rest is written through the page cache."""

    def __init__(self, fd: int):
        self.fd = fd
        self.size = 0
        self.direct = False
        self.filled = 0
        self.buffer: mmap.mmap | None = None
        if settings.ARTIFACT_DIRECT_IO and hasattr(os, "O_DIRECT"):
            try:
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
            except OSError:
                return
            self.direct = True
            self.buffer = mmap.mmap(-1, _DIRECT_BUFFER)  # page-aligned

    def __enter__(self) -> "_StagingFile":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            if self.buffer is not None:
                # After a failed write its traceback may still hold a view of the buffer:
                # then the buffer goes with the traceback, not here.
                with contextlib.suppress(BufferError):
                    self.buffer.close()
            os.close(self.fd)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.buffer is None:
            self._write_all(memoryview(chunk))
            return
        view = memoryview(chunk)
        while view:
            n = min(len(view), _DIRECT_BUFFER - self.filled)
            self.buffer[self.filled : self.filled + n] = view[:n]
            self.filled += n
            view = view[n:]
            if self.filled == _DIRECT_BUFFER:
                self._flush(_DIRECT_BUFFER)

    def _flush(self, length: int) -> None:
        data = memoryview(self.buffer)[:length]
        while data:
            try:
                written = os.write(self.fd, data)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.direct:
                    raise
                # Refused after all (a partial write left an odd offset, say): a refused
                # write writes nothing, so the rest goes through the page cache from here.
                self._stop_direct()
                continue
            data = data[written:]
        self.filled = 0

    def _finish(self) -> None:
        if self.buffer is None or not self.filled:
            return
        padded = -(-self.filled // _ALIGN) * _ALIGN
        self.buffer[self.filled : padded] = bytes(padded - self.filled)
        self._flush(padded)
        os.ftruncate(self.fd, self.size)

    def _stop_direct(self) -> None:
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self.direct = False

    def _write_all(self, data: memoryview) -> None:
        while data:
            data = data[os.write(self.fd, data) :]


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
        with _StagingFile(fd) as out:
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


# Blobs at least this large are read for a download with O_DIRECT (blob_chunks); smaller
# ones through the page cache, where a popular small file stays warm.
DIRECT_READ_MIN = 16 * 1024 * 1024
_SEND_CHUNK = 1024 * 1024


def blob_chunks(sha256: str, size: int) -> Iterator[bytes] | None:
    """The bytes of a large blob on the filesystem, read with O_DIRECT in 4 MiB blocks into
    one page-aligned buffer, as the upload wrote them: a large download neither fills the
    page cache nor waits for it (sendfile must go through it). None for a small blob, for
    other storage, or with ARTIFACT_DIRECT_IO off: open_blob then. If the kernel refuses
    direct reads, at open or later, the rest is read through the page cache."""
    storage = artifact_storage()
    if (
        size < DIRECT_READ_MIN
        or not settings.ARTIFACT_DIRECT_IO
        or not hasattr(os, "O_DIRECT")
        or not isinstance(storage, FileSystemStorage)
    ):
        return None
    path = storage.path(blob_key(sha256))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        fd = os.open(path, os.O_RDONLY)
    return _read_blocks(fd)


def _read_blocks(fd: int) -> Iterator[bytes]:
    buffer = mmap.mmap(-1, _DIRECT_BUFFER)  # page-aligned
    offset = 0
    try:
        while True:
            try:
                n = os.preadv(fd, [buffer], offset)
            except OSError as exc:
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
                if exc.errno != errno.EINVAL or not flags & os.O_DIRECT:
                    raise
                fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
                continue
            if n == 0:
                return
            # Copies (bytes: the buffer is read into again), a MiB each: chunks of the
            # buffer's size would have the allocator keep that much per thread afterwards.
            for start in range(0, n, _SEND_CHUNK):
                yield buffer[start : min(n, start + _SEND_CHUNK)]
            offset += n
    finally:
        buffer.close()
        os.close(fd)


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
