"""Content-addressed blob storage through Django's storage API (SPEC 3.5).

An upload streams into a staging file while it is hashed, in bounded memory, the hashing
and writing overlapped with receiving (_Pipeline). Only a complete
upload whose SHA-256 matches what the client expected is moved under its storage key
(`blobs/ab/cd/<sha256>`); the key is made here, never from a user's path. Whatever goes
wrong, the staging file is removed. Folders made here get mode 0750 and blobs on the
filesystem 0640 (config/files.py); a bucket that does not exist is Unavailable (503), not
a failure of the server.
"""

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from config.files import FILE_MODE, make_dirs
from registry.errors import Invalid, RegistryError, TooLarge, Unavailable

CHUNK_SIZE = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def artifact_storage() -> Storage:
    return storages["artifacts"]


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Around calls to the artifact storage: on object storage, a failure because its bucket
    does not exist becomes Unavailable, with a message that names the bucket. (The
    storage's answers do not always say so: a missing object and a missing bucket are both
    404 to HEAD and GET. Only after a failure is the bucket asked after, once.)"""
    try:
        yield
    except Exception as exc:
        storage = artifact_storage()
        bucket = getattr(storage, "bucket_name", None)
        if bucket and not isinstance(exc, RegistryError) and not bucket_exists(storage):
            raise Unavailable(
                f"artifact storage bucket {bucket!r} does not exist: create it, or set "
                "AWS_STORAGE_BUCKET_NAME to one that does"
            ) from exc
        raise


def bucket_exists(storage: Storage) -> bool:
    """Whether an S3 storage's bucket is there (HeadBucket); True when it cannot tell."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code not in ("404", "NoSuchBucket")
    except BotoCoreError:  # the endpoint does not answer: the first failure stands
        return True
    return True


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


# Chunks waiting for a _Pipeline's thread, at most: with CHUNK_SIZE pieces, about what an
# upload holds beyond the staging file's buffer (its two stages are fed the same chunks).
_PIPELINE_DEPTH = 4


class _Pipeline:
    """Runs `work` on each chunk put in, in order, on a thread named `name`, while the caller
    goes on (receiving the next chunk): hashlib (for more than 2 KiB), os.write and a
    socket's recv all release the GIL, so on two cores an upload need not be received, hashed
    and written one after the other. At most _PIPELINE_DEPTH chunks wait; `put` blocks
    beyond. After `work` fails, the thread takes the rest without working on it, and `put`
    and `finish` raise the failure; `stop` ends the thread without raising."""

    def __init__(self, work: Callable[[bytes], None], name: str):
        self.work = work
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPELINE_DEPTH)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = threading.Thread(
            target=self._run, name=name, daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            if self.error is None:
                try:
                    self.work(chunk)
                except BaseException as exc:  # handed to the receiving thread
                    self.error = exc

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.chunks.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk is worked on; raise what `work` raised, if it did."""
        self.stop()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self.thread is not None:
            self.chunks.put(None)
            self.thread.join()
            self.thread = None


def _hash_and_write(chunks: Iterator[bytes], out: "_StagingFile", limit: int) -> tuple[str, int]:
    """Hash and write `chunks` in order: (SHA-256, size). TooLarge past `limit` bytes, before
    the chunk that crosses it is written. A one-chunk upload is done here; from the second
    chunk on, hashing and writing each run on a _Pipeline of their own (one thread
    hashing and writing was the upload's bottleneck: the disk's waits came on top of the
    hashing), both fed the same chunks."""
    hasher = hashlib.sha256()
    size = 0
    stages: list[_Pipeline] = []
    try:
        for chunk in chunks:
            if size and not stages:
                stages = [
                    _Pipeline(hasher.update, "upload-hash"),
                    _Pipeline(out.write, "upload-write"),
                ]
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the artifact is larger than the limit of {limit} bytes")
            if not stages:
                hasher.update(chunk)
                out.write(chunk)
            for stage in stages:
                stage.put(chunk)
        for stage in stages:
            stage.finish()
    finally:
        for stage in stages:
            stage.stop()  # after a failure here: no thread outlives the staging file
    return hasher.hexdigest(), size


@contextlib.contextmanager
def staged_upload(
    source: BinaryIO | Iterable[bytes],
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    max_size: int | None = None,
) -> Iterator[StagedUpload]:
    """Stream `source` into a staging file, hashing as it goes; always remove the file after.

    Refuses (Invalid) a SHA-256 that does not match and a size other than `expected_size`
    (the body a client declared, cut off or overlong), and (TooLarge) more than `max_size`
    bytes, reading no further than one chunk past the limit.
    """
    expected = normalise_sha256(expected_sha256)
    limit = settings.ARTIFACT_MAX_SIZE if max_size is None else max_size
    staging_dir = make_dirs(settings.ARTIFACT_TMP_DIR)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=staging_dir)
    path = Path(name)
    try:
        with _StagingFile(fd) as out:
            # The staging file becomes the blob by a rename: it has the blob's mode now.
            os.fchmod(fd, FILE_MODE)
            digest, size = _hash_and_write(iter_chunks(source), out, limit)
        if expected_size is not None and size != expected_size:
            raise Invalid(
                f"the upload was {size} bytes where {expected_size} were declared: "
                f"{'it was cut off' if size < expected_size else 'it ran over'}, and nothing "
                "was stored",
                details={"declared": expected_size, "received": size},
            )
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
        make_dirs(target.parent)
        try:
            # One rename when the staging folder is on the same filesystem: no second copy.
            os.replace(staged.path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(staged.path, partial)
            partial.chmod(FILE_MODE)
            os.replace(partial, target)
        return True
    with storage_errors():
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
    with storage_errors():
        return artifact_storage().open(blob_key(sha256), "rb")


# Blobs at least this large are read for a download with O_DIRECT (blob_chunks); smaller
# ones through the page cache, where a popular small file stays warm.
DIRECT_READ_MIN = 16 * 1024 * 1024
_SEND_CHUNK = 1024 * 1024


def blob_chunks(sha256: str, size: int) -> "DirectBlob | None":
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
    return DirectBlob(fd)


class DirectBlob:
    """A blob's bytes from an open file, in pieces of up to a MiB, read on a thread of their
    own (`download-read`) up to _PIPELINE_DEPTH pieces ahead of the one iterating, so that
    the disk's next block is read while this one is sent (os.preadv releases the GIL): on
    a disk that reads 700-1,000 MB/s, reading and sending one after the other was the
    download's limit. What the reading raises is raised to the one iterating. `close` (the
    response's, also after the client went away midway, or before anything was read) stops
    the thread and closes the file. Iterated once."""

    def __init__(self, fd: int):
        self.fd: int | None = fd
        self.ready: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_PIPELINE_DEPTH)
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[bytes]:
        if self.thread is not None or self.fd is None:
            raise RuntimeError("a DirectBlob is iterated once, before it is closed")
        self.thread = threading.Thread(target=self._read, name="download-read", daemon=True)
        self.thread.start()
        while (item := self.ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _read(self) -> None:
        end: BaseException | None = None
        try:
            with contextlib.closing(_read_blocks(self.fd)) as blocks:
                for piece in blocks:
                    if self.stopped.is_set():
                        return
                    self.ready.put(piece)
        except BaseException as exc:  # handed to the one iterating
            end = exc
        if not self.stopped.is_set():
            self.ready.put(end)

    def close(self) -> None:
        # Once stopped is set, the reader puts at most one more piece: emptying the queue
        # once means it never blocks again.
        self.stopped.set()
        if self.thread is not None:
            with contextlib.suppress(queue.Empty):
                while True:
                    self.ready.get_nowait()
            self.thread.join()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


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
