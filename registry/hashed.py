"""An upload's bytes as they pass: hashed, counted and held to a limit, for the staging of
every storage (registry/storage.py, registry/s3.py)."""

import hashlib
from collections.abc import Iterable, Iterator

from registry.errors import TooLarge


class Hashed:
    """`chunks` as they pass, hashed and counted; TooLarge past `limit` bytes, before the
    chunk that crosses it is handed on. After iterating: `digest` and `size`."""

    def __init__(self, chunks: Iterable[bytes], limit: int):
        self.chunks, self.limit = chunks, limit
        self.hasher = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                raise TooLarge(f"the artifact is larger than the limit of {self.limit} bytes")
            self.hasher.update(chunk)
            yield chunk

    @property
    def digest(self) -> str:
        return self.hasher.hexdigest()
