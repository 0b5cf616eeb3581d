"""The filesystem's direct-I/O path (registry.directio, ARTIFACT_DIRECT_IO on): an upload
written with O_DIRECT while hashed and written on threads of its own, a large download read
with O_DIRECT ahead of the sending; refused direct I/O falls back to the page cache, and no
thread or file outlives a failure."""

import contextlib
import errno
import hashlib
import os
import threading

import pytest

from registry import directio, storage
from registry.storage import staged_upload
from tests.registry.test_staging import MIB, helper_threads, pieces_of, stage


@pytest.fixture(autouse=True)
def _direct_io(settings):
    settings.ARTIFACT_DIRECT_IO = True


def test_it_writes_the_staging_file_with_o_direct(monkeypatch):
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this system")
    real_write, direct = os.write, []

    def write(fd, data):
        direct.append(bool(directio.fcntl.fcntl(fd, directio.fcntl.F_GETFL) & os.O_DIRECT))
        return real_write(fd, data)

    monkeypatch.setattr(directio.os, "write", write)
    data, pieces = pieces_of(9 * MIB + 5, 1)
    assert stage(pieces)[0] == data
    if not any(direct):
        pytest.skip("this filesystem refuses O_DIRECT (tmpfs?): nothing to check")
    assert all(direct)


def test_it_goes_on_through_the_page_cache_when_direct_io_is_refused(monkeypatch):
    """A kernel that takes O_DIRECT on the file but refuses a write (EINVAL) midway: the
    refused write wrote nothing, and the rest of the bytes still land in order."""
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 2 and directio.fcntl.fcntl(fd, directio.fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(directio.os, "write", write)
    data, pieces = pieces_of(10 * MIB + 77, 7)
    stored, sha256, _ = stage(pieces)
    assert stored == data
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert len(calls) >= 3


def test_it_raises_a_write_failure_on_a_later_chunk_and_leaves_nothing(
    settings, monkeypatch, tmp_path
):
    """From the second chunk on, the bytes are hashed and written on threads of their own: a
    failure there still reaches the caller, and neither the threads nor the file outlive it."""
    settings.ARTIFACT_TMP_DIR = tmp_path
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(directio.os, "write", write)
    received = []

    def chunks():
        for n in range(40):  # more than the pipeline holds: the failure must unblock it
            received.append(n)
            yield bytes([n]) * MIB

    with pytest.raises(OSError, match="No space"), staged_upload(chunks()):
        pass
    assert "upload-write" in calls
    assert len(received) < 40  # the receiving stopped at the failure
    assert list(tmp_path.iterdir()) == []
    assert helper_threads() == []


def stored_blob(size: int, seed: int) -> tuple[bytes, str, str]:
    """(bytes, SHA-256, path) of a blob stored through staging and placing."""
    data, pieces = pieces_of(size, seed)
    with staged_upload(iter(pieces)) as staged:
        storage.place_blob(staged)
    sha256 = hashlib.sha256(data).hexdigest()
    return data, sha256, storage.artifact_storage().path(storage.blob_key(sha256))


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "download-read"]


@pytest.mark.parametrize("size", [1, 4095, 4096, 4 * MIB, 4 * MIB + 1, 9 * MIB + 4097])
def test_it_reads_a_blob_back_with_direct_reads(size):
    data, _, path = stored_blob(size, size)
    with contextlib.closing(directio.blob_chunks(path)) as chunks:
        assert b"".join(chunks) == data
    assert readers() == []


def test_it_reads_on_through_the_page_cache_when_a_direct_read_is_refused(monkeypatch):
    data, _, path = stored_blob(9 * MIB + 5, 3)
    real, calls = os.preadv, []

    def preadv(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 2 and directio.fcntl.fcntl(fd, directio.fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, buffers, offset)

    monkeypatch.setattr(directio.os, "preadv", preadv)
    with contextlib.closing(directio.blob_chunks(path)) as chunks:
        assert b"".join(chunks) == data
    assert calls[1] == calls[2] == 4 * MIB  # the refused read, read again


@pytest.fixture
def large_blob():
    return stored_blob(20 * MIB + 5, 11)


def test_it_stops_reading_when_a_download_is_closed_midway(large_blob, blob_open):
    """A client that goes away after two pieces: the response's close stops the reading
    thread, which was reading ahead, and closes the file."""
    data, sha256, path = large_blob
    chunks = directio.blob_chunks(path)
    pieces = iter(chunks)
    assert next(pieces) + next(pieces) == data[: 2 * MIB]
    assert readers() != []
    chunks.close()
    assert readers() == []
    assert not blob_open(sha256)


def test_it_closes_a_download_that_was_never_read(large_blob, blob_open):
    _, sha256, path = large_blob
    chunks = directio.blob_chunks(path)
    assert blob_open(sha256)
    chunks.close()
    assert (blob_open(sha256), readers()) == (False, [])


def test_it_raises_a_read_failure_to_the_one_sending(large_blob, monkeypatch):
    data, _, path = large_blob
    real, calls = os.preadv, []

    def preadv(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(directio.os, "preadv", preadv)
    received = []
    chunks = directio.blob_chunks(path)
    with contextlib.closing(chunks), pytest.raises(OSError, match="Input/output"):
        for piece in chunks:
            received.append(piece)
    assert b"".join(received) == data[: 8 * MIB]  # the two blocks read before
    assert readers() == []
