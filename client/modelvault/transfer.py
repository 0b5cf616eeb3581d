"""Moving an artifact's bytes: a streamed upload with its SHA-256 for the server to verify,
and a download that resumes with Range, follows a redirect to an object store without the
token, and keeps the file only once its whole SHA-256 is the server's."""

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx

from modelvault.errors import ChecksumMismatch, ModelvaultError, check

if TYPE_CHECKING:
    from modelvault.client import Client

Progress = Callable[[int, int | None], None]
CHUNK = 1024 * 1024
# Tries of one download_artifact call: a connection lost midway resumes where it stopped.
DOWNLOAD_ATTEMPTS = 3


def file_sha256(path: str | os.PathLike, chunk: int = CHUNK) -> tuple[str, int]:
    """The hex SHA-256 and size of a local file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _checksum_word(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().strip('"').lower()
    return value.removeprefix("sha256:") or None


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts or "\\" in path:
        raise ModelvaultError(f"refusing to write the artifact path {path!r} outside dest_dir")
    return relative


def upload(
    client: "Client", url: str, local_file: str | os.PathLike, progress: Progress | None
) -> dict[str, Any]:
    """PUT a local file to the artifact at `url`, streamed, with its SHA-256 for the server
    to verify (read twice: once to hash, once to send)."""
    sha256, size = file_sha256(local_file)

    def chunks() -> Iterator[bytes]:
        done = 0
        if progress:
            progress(0, size)
        with Path(local_file).open("rb") as handle:
            while block := handle.read(CHUNK):
                done += len(block)
                yield block
                if progress:
                    progress(done, size)

    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "X-Checksum-Sha256": sha256,
    }
    return client.json("PUT", url, content=chunks(), headers=headers)


def download(
    client: "Client",
    url: str,
    path: str,
    dest_dir: str | os.PathLike,
    progress: Progress | None,
    attempts: int,
) -> Path:
    """Stream the artifact at `url` to `dest_dir/path` and verify the whole file's SHA-256.

    The bytes go to `.NAME.part` beside the target first. A connection lost midway is
    resumed with `Range` (up to `attempts` tries in all); a part left by an earlier call is
    resumed too, when the server still has the same file (`If-Range` on the checksum kept in
    `.NAME.part.sha256`). On a checksum mismatch the part is deleted and ChecksumMismatch
    raised; the target appears only once verified."""
    target = Path(dest_dir) / _safe_relative(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    kept = target.with_name(f".{target.name}.part.sha256")
    for attempt in range(1, attempts + 1):
        # What an earlier try (of this call or another) fetched of which file.
        known = kept.read_text().strip() if kept.exists() and part.exists() else None
        try:
            expected = _download_into(client, url, path, part, kept, known, progress)
            break
        except httpx.TransportError:
            if attempt == attempts:
                raise
    digest = hashlib.sha256()
    with part.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected:
        part.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{path}: the download's SHA-256 is {actual}, the server's {expected}; "
            "the file was not kept",
            expected=expected,
            actual=actual,
        )
    os.replace(part, target)
    kept.unlink(missing_ok=True)
    return target


def _download_into(
    client: "Client",
    url: str,
    path: str,
    part: Path,
    kept: Path,
    expected: str | None,
    progress: Progress | None,
) -> str:
    """Fetch into `part` what it lacks (all of it, or from its end when the server's file
    is still `expected`); the server's SHA-256.

    A server that stores artifacts on S3 may answer with a redirect to a presigned URL
    (ARTIFACT_DOWNLOAD_REDIRECT): the checksum is the redirect's, and the bytes are
    fetched from that URL by a request of its own, which never carries the token."""
    have = part.stat().st_size if expected and part.exists() else 0
    headers = {"Range": f"bytes={have}-", "If-Range": f'"{expected}"'} if have else {}
    with contextlib.ExitStack() as stack:
        # Redirects are not followed by the session: its token must not go along.
        response = stack.enter_context(client.stream_unchecked("GET", url, headers=headers))
        location = response.headers.get("Location") if response.is_redirect else None
        if not (response.is_success or location):
            response.read()
            check(response)
        sha256 = _checksum_word(response.headers.get("X-Checksum-Sha256")) or (
            _checksum_word(response.headers.get("ETag"))
        )
        if not sha256:
            raise ModelvaultError(f"the server sent no checksum for {path}")
        if location:
            if sha256 != expected:
                have = 0  # the server's file is another: fetch it whole
            response = stack.enter_context(
                _object_store_stream(response.url.join(location), have, client)
            )
        if response.status_code != 206:  # the whole file: start again
            have = 0
        kept.write_text(sha256)
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if progress:
            progress(have, total)
        with part.open("ab" if have else "wb") as handle:
            done = have
            for block in response.iter_bytes():  # as received: a cut keeps all of it
                handle.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    return sha256


@contextlib.contextmanager
def _object_store_stream(url: httpx.URL, have: int, client: "Client") -> Iterator[httpx.Response]:
    """GET an artifact's presigned URL from `have` on, with an HTTP client of its own:
    neither the token nor any other header of the Modelvault session goes to the object
    store."""
    headers = {"User-Agent": client.user_agent}
    if have:
        headers["Range"] = f"bytes={have}-"  # the key is content-addressed: no If-Range
    with (
        httpx.Client(timeout=client.timeout) as http,
        http.stream("GET", url, headers=headers) as response,
    ):
        if not response.is_success:
            response.read()
            raise ModelvaultError(
                f"the object store answered the download's redirect with "
                f"{response.status_code} {response.reason_phrase}",
                status=response.status_code,
            )
        yield response
