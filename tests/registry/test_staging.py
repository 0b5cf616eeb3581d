"""Staging an upload (registry.storage.staged_upload): the bytes land whole and hashed,
whether written with O_DIRECT, through the page cache, or switching midway."""

import errno
import hashlib
import os
import random

import pytest

from registry import storage
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
    assert b"".join(chunks) == data


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
    assert b"".join(storage.blob_chunks(sha256, len(data))) == data
    assert calls[1] == calls[2] == 4 * MIB  # the refused read, read again


def test_it_leaves_small_blobs_and_switched_off_direct_io_to_the_page_cache(settings):
    settings.ARTIFACT_DIRECT_IO = True
    data, sha256 = _stored(1000, 5)
    assert storage.blob_chunks(sha256, len(data)) is None  # under DIRECT_READ_MIN
    settings.ARTIFACT_DIRECT_IO = False
    assert storage.blob_chunks(sha256, storage.DIRECT_READ_MIN) is None
