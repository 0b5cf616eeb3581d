"""Staging an upload (registry.storage.staged_upload): the bytes land whole and hashed,
whether written with O_DIRECT, through the page cache, or switching midway, and nothing is
left behind (file or thread) when it fails."""

import contextlib
import errno
import hashlib
import os
import random
import threading

import pytest

from registry import storage
from registry.errors import TooLarge
from registry.storage import staged_upload

MIB = 1024 * 1024
# Around the 4 MiB direct-I/O block and the 4 KiB alignment, and in odd pieces.
SIZES = [0, 1, 4095, 4096, 4097, 4 * MIB - 1, 4 * MIB, 4 * MIB + 123, 9 * MIB + 4097]


def _pieces(size: int, seed: int) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    pieces, at = [], 0
    while at < size:
        step = rng.choice([1, 17, 4096, 65_537, MIB, 3 * MIB + 5])
        pieces.append(data[at : at + step])
        at += step
    return data, pieces


def _stage(pieces: list[bytes]) -> tuple[bytes, str, int]:
    with staged_upload(iter(pieces)) as staged:
        return staged.path.read_bytes(), staged.sha256, staged.size


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("direct_io", [True, False])
def test_it_stages_every_size_whole(settings, size, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    data, pieces = _pieces(size, size)
    stored, sha256, staged_size = _stage(pieces)
    assert stored == data
    assert (sha256, staged_size) == (hashlib.sha256(data).hexdigest(), size)


def test_it_goes_on_through_the_page_cache_when_direct_io_is_refused(settings, monkeypatch):
    """A kernel that takes O_DIRECT on the file but refuses a write (EINVAL) midway: the
    refused write wrote nothing, and the rest of the bytes still land in order."""
    settings.ARTIFACT_DIRECT_IO = True
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 2 and storage.fcntl.fcntl(fd, storage.fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", write)
    data, pieces = _pieces(10 * MIB + 77, 7)
    stored, sha256, _ = _stage(pieces)
    assert stored == data
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert len(calls) >= 3


def test_it_removes_the_staging_file_when_a_write_fails(settings, monkeypatch, tmp_path):
    settings.ARTIFACT_DIRECT_IO = True
    settings.ARTIFACT_TMP_DIR = tmp_path

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "write", write)
    with pytest.raises(OSError, match="No space"), staged_upload(iter([b"x" * (5 * MIB)])):
        pass
    assert list(tmp_path.iterdir()) == []


def _pipelines() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("upload-")]


@pytest.mark.parametrize("direct_io", [True, False])
def test_it_raises_a_write_failure_on_a_later_chunk_and_leaves_nothing(
    settings, monkeypatch, tmp_path, direct_io
):
    """From the second chunk on, the bytes are hashed and written on threads of their own: a
    failure there still reaches the caller, and neither the threads nor the file outlive it."""
    settings.ARTIFACT_DIRECT_IO = direct_io
    settings.ARTIFACT_TMP_DIR = tmp_path
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(storage.os, "write", write)
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
    assert _pipelines() == []


def test_it_stops_at_the_size_limit_midway_and_leaves_nothing(settings, tmp_path):
    settings.ARTIFACT_TMP_DIR = tmp_path
    with pytest.raises(TooLarge), staged_upload(iter([b"x" * MIB] * 8), max_size=5 * MIB):
        pass
    assert list(tmp_path.iterdir()) == []
    assert _pipelines() == []


def test_it_leaves_nothing_when_the_source_breaks_off_midway(settings, tmp_path):
    settings.ARTIFACT_TMP_DIR = tmp_path

    def chunks():
        yield from [b"y" * MIB] * 6
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError), staged_upload(chunks()):
        pass
    assert list(tmp_path.iterdir()) == []
    assert _pipelines() == []


def test_it_hashes_many_chunks_in_their_order(settings):
    pieces = [bytes([n % 251]) * (MIB - n) for n in range(24)]
    stored, sha256, size = _stage(pieces)
    data = b"".join(pieces)
    assert (stored, sha256, size) == (data, hashlib.sha256(data).hexdigest(), len(data))
    assert _pipelines() == []


def _stored(size: int, seed: int) -> tuple[bytes, str]:
    data, pieces = _pieces(size, seed)
    with staged_upload(iter(pieces)) as staged:
        storage.place_blob(staged)
    return data, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [1, 4095, 4096, 4 * MIB, 4 * MIB + 1, 9 * MIB + 4097])
def test_it_reads_a_large_blob_back_with_direct_reads(settings, monkeypatch, size):
    settings.ARTIFACT_DIRECT_IO = True
    monkeypatch.setattr(storage, "DIRECT_READ_MIN", 0)  # every size, around the block
    data, sha256 = _stored(size, size)
    chunks = storage.blob_chunks(sha256, size)
    assert chunks is not None
    with contextlib.closing(chunks):
        assert b"".join(chunks) == data
    assert _readers() == []


def test_it_reads_on_through_the_page_cache_when_a_direct_read_is_refused(settings, monkeypatch):
    settings.ARTIFACT_DIRECT_IO = True
    monkeypatch.setattr(storage, "DIRECT_READ_MIN", 0)
    data, sha256 = _stored(9 * MIB + 5, 3)
    real, calls = os.preadv, []

    def preadv(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 2 and storage.fcntl.fcntl(fd, storage.fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, buffers, offset)

    monkeypatch.setattr(storage.os, "preadv", preadv)
    with contextlib.closing(storage.blob_chunks(sha256, len(data))) as chunks:
        assert b"".join(chunks) == data
    assert calls[1] == calls[2] == 4 * MIB  # the refused read, read again


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "download-read"]


@pytest.fixture
def large_blob(settings, monkeypatch):
    settings.ARTIFACT_DIRECT_IO = True
    monkeypatch.setattr(storage, "DIRECT_READ_MIN", 0)
    return _stored(20 * MIB + 5, 11)


def test_it_stops_reading_when_a_download_is_closed_midway(large_blob, blob_open):
    """A client that goes away after two pieces: the response's close stops the reading
    thread, which was reading ahead, and closes the file."""
    data, sha256 = large_blob
    chunks = storage.blob_chunks(sha256, len(data))
    pieces = iter(chunks)
    assert next(pieces) + next(pieces) == data[: 2 * MIB]
    assert _readers() != []
    chunks.close()
    assert _readers() == []
    assert not blob_open(sha256)


def test_it_closes_a_download_that_was_never_read(large_blob, blob_open):
    data, sha256 = large_blob
    chunks = storage.blob_chunks(sha256, len(data))
    assert blob_open(sha256)
    chunks.close()
    assert (blob_open(sha256), _readers()) == (False, [])


def test_it_raises_a_read_failure_to_the_one_sending(large_blob, monkeypatch):
    data, sha256 = large_blob
    real, calls = os.preadv, []

    def preadv(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, buffers, offset)

    monkeypatch.setattr(storage.os, "preadv", preadv)
    received = []
    chunks = storage.blob_chunks(sha256, len(data))
    with contextlib.closing(chunks), pytest.raises(OSError, match="Input/output"):
        for piece in chunks:
            received.append(piece)
    assert b"".join(received) == data[: 8 * MIB]  # the two blocks read before
    assert _readers() == []


def test_it_leaves_small_blobs_and_switched_off_direct_io_to_the_page_cache(settings):
    settings.ARTIFACT_DIRECT_IO = True
    data, sha256 = _stored(1000, 5)
    assert storage.blob_chunks(sha256, len(data)) is None  # under DIRECT_READ_MIN
    settings.ARTIFACT_DIRECT_IO = False
    assert storage.blob_chunks(sha256, storage.DIRECT_READ_MIN) is None
