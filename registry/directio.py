"""The filesystem's fast path, behind ARTIFACT_DIRECT_IO (docs/operations.md): an upload's
staging file written with O_DIRECT while hashing and writing run on threads of their own,
and a large blob read for a download with O_DIRECT on a thread of its own.

On a virtual machine that hands out fresh page-cache memory slowly (bench/HISTORY.md,
"Artifacts and memory"), keeping artifacts out of the page cache and overlapping the
upload's receiving, hashing and writing is what made uploads and downloads fast. Where the
kernel refuses direct I/O (tmpfs, not Linux), at the start or midway, the rest goes
through the page cache. registry/storage.py calls in here only with the setting on; its
plain path does the same work in one thread, through the page cache.
"""

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

from registry.errors import TooLarge

_ALIGN = 4096  # a multiple of every disk's logical block size
_DIRECT_BUFFER = 4 * 1024 * 1024
# Chunks waiting for a _Pipeline's thread, at most: with 1 MiB chunks, about what an upload
# holds beyond the staging file's buffer (its two stages are fed the same chunks).
_PIPELINE_DEPTH = 4
# Blobs at least this large are read for a download with O_DIRECT (blob_chunks); smaller
# ones through the page cache (sendfile), where a popular small file stays warm.
DIRECT_READ_MIN = 16 * 1024 * 1024
_SEND_CHUNK = 1024 * 1024


def write_staging_file(fd: int, chunks: Iterable[bytes], limit: int) -> tuple[str, int]:
    """Hash `chunks` and write them to the open staging file `fd`, in order: (SHA-256, size).
    TooLarge past `limit` bytes, before the chunk that crosses it is written. A one-chunk
    upload is done here; from the second chunk on, hashing and writing each run on a
    _Pipeline of their own (one thread hashing and writing was the upload's bottleneck:
    the disk's waits came on top of the hashing), both fed the same chunks."""
    hasher = hashlib.sha256()
    size = 0
    stages: list[_Pipeline] = []
    with _StagingFile(fd) as out:
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


class _StagingFile:
    """The staging file's writer. Where the filesystem allows it (Linux, not tmpfs), it writes
    with O_DIRECT, in aligned 4 MiB blocks from a page-aligned buffer, so that a large
    upload does not first fill the page cache. The last block is padded to the alignment
    and the file cut back to its size. If the kernel refuses direct I/O at any point, the
    rest is written through the page cache. The caller closes `fd`."""

    def __init__(self, fd: int):
        self.fd = fd
        self.size = 0
        self.direct = False
        self.filled = 0
        self.buffer: mmap.mmap | None = None
        if hasattr(os, "O_DIRECT"):
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


def blob_chunks(path: str) -> "DirectBlob":
    """The bytes of the blob at `path`, read with O_DIRECT in 4 MiB blocks into one
    page-aligned buffer, as the upload wrote them: a large download neither fills the page
    cache nor waits for it (sendfile must go through it). If the kernel refuses direct
    reads, at open or later, the rest is read through the page cache."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
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
                if exc.errno != errno.EINVAL or not flags & getattr(os, "O_DIRECT", 0):
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
