"""Staging an upload on the filesystem (registry.storage.staged_upload): the bytes land whole
and hashed, by the plain path (ARTIFACT_DIRECT_IO off) and the direct-I/O one
(registry.directio, tested further in test_directio.py) alike, and nothing is left behind
(file or thread) when it fails."""

import errno
import fcntl
import hashlib
import os
import random
import threading

import pytest

from registry.errors import TooLarge
from registry.storage import staged_upload

MIB = 1024 * 1024
# Around the 4 MiB direct-I/O block and the 4 KiB alignment, and in odd pieces.
SIZES = [0, 1, 4095, 4096, 4097, 4 * MIB - 1, 4 * MIB, 4 * MIB + 123, 9 * MIB + 4097]
BOTH = pytest.mark.parametrize("direct_io", [True, False], ids=["direct", "plain"])


def pieces_of(size: int, seed: int) -> tuple[bytes, list[bytes]]:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    pieces, at = [], 0
    while at < size:
        step = rng.choice([1, 17, 4096, 65_537, MIB, 3 * MIB + 5])
        pieces.append(data[at : at + step])
        at += step
    return data, pieces


def stage(pieces: list[bytes]) -> tuple[bytes, str, int]:
    with staged_upload(iter(pieces)) as staged:
        return staged.path.read_bytes(), staged.sha256, staged.size


def helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("upload-")]


@pytest.mark.parametrize("size", SIZES)
@BOTH
def test_it_stages_every_size_whole(settings, size, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    data, pieces = pieces_of(size, size)
    stored, sha256, staged_size = stage(pieces)
    assert stored == data
    assert (sha256, staged_size) == (hashlib.sha256(data).hexdigest(), size)


def test_it_hashes_and_writes_on_the_callers_thread_through_the_page_cache(settings, monkeypatch):
    """The plain path: no helper thread, no O_DIRECT; each chunk written as it comes."""
    settings.ARTIFACT_DIRECT_IO = False
    real_write, writes = os.write, []

    def write(fd, data):
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))
        writes.append((threading.current_thread().name, direct))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    data, pieces = pieces_of(6 * MIB + 3, 4)
    assert stage(pieces)[0] == data
    assert set(writes) == {(threading.current_thread().name, False)}
    assert len(writes) >= len(pieces)


@BOTH
def test_it_removes_the_staging_file_when_a_write_fails(settings, monkeypatch, tmp_path, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    settings.ARTIFACT_TMP_DIR = tmp_path

    def write(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError, match="No space"), staged_upload(iter([b"x" * (5 * MIB)])):
        pass
    assert list(tmp_path.iterdir()) == []


@BOTH
def test_it_stops_at_the_size_limit_midway_and_leaves_nothing(settings, tmp_path, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    settings.ARTIFACT_TMP_DIR = tmp_path
    received = []

    def chunks():
        for n in range(8):
            received.append(n)
            yield b"x" * MIB

    with pytest.raises(TooLarge), staged_upload(chunks(), max_size=5 * MIB):
        pass
    assert len(received) == 6  # no further than the chunk that crossed the limit
    assert list(tmp_path.iterdir()) == []
    assert helper_threads() == []


@BOTH
def test_it_leaves_nothing_when_the_source_breaks_off_midway(settings, tmp_path, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    settings.ARTIFACT_TMP_DIR = tmp_path

    def chunks():
        yield from [b"y" * MIB] * 6
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError), staged_upload(chunks()):
        pass
    assert list(tmp_path.iterdir()) == []
    assert helper_threads() == []


@BOTH
def test_it_hashes_many_chunks_in_their_order(settings, direct_io):
    settings.ARTIFACT_DIRECT_IO = direct_io
    pieces = [bytes([n % 251]) * (MIB - n) for n in range(24)]
    stored, sha256, size = stage(pieces)
    data = b"".join(pieces)
    assert (stored, sha256, size) == (data, hashlib.sha256(data).hexdigest(), len(data))
    assert helper_threads() == []
