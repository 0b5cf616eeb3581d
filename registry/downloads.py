"""An artifact's bytes as an HTTP download, the same from the UI and the API (SPEC 3.5).

A download honours one `Range` (RFC 9110 14), so that a client can resume: `bytes=a-b`,
`bytes=a-` or `bytes=-n` answer 206 with that part and `Content-Range`; a range past the
end answers 416. Several ranges, a malformed one, or an `If-Range` that is not the blob's
ETag get the whole file (200), as the RFC lets a server do. Every answer carries the whole
file's SHA-256 (ETag, X-Checksum-Sha256), so a resumed file is checked as one.
"""

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator

from django.conf import settings
from django.core.files.storage import Storage
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header

from registry import directio, s3
from registry.models import Artifact
from registry.storage import (
    CHUNK_SIZE,
    artifact_storage,
    blob_key,
    on_filesystem,
    open_blob,
    storage_errors,
)

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    pass


def wanted_range(request: HttpRequest, etag: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of the one range asked for, or None for the whole file;
    Unsatisfiable for a range that starts past the end."""
    header = request.headers.get("Range")
    if not header or size == 0:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != etag:
        return None  # the file changed since the client's part: send it whole
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last n bytes
        if int(last) == 0:
            raise Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size:
        raise Unsatisfiable
    if end < start:
        return None  # malformed: ignored
    return start, end


def range_chunks(sha256: str, start: int, length: int, *, whole: bool = False) -> Iterable[bytes]:
    """`length` bytes of the blob from `start`, in chunks: a seek on the filesystem, a
    ranged GET on S3 (through django-storages' boto3 Object), never more than the range;
    the `whole` blob by a plain GET. The GET is sent here, before the response starts: a
    storage that refuses it (a bucket that does not exist: registry.storage.storage_errors)
    is answered as an error, not cut off."""
    storage = artifact_storage()
    key = blob_key(sha256)
    if on_filesystem(storage):
        return _file_range(storage.path(key), start, length)
    # django-storages' file names the object as the storage does (its `location` prefix
    # included); its boto3 Object reads the range.
    ranged = {} if whole else {"Range": f"bytes={start}-{start + length - 1}"}
    with storage_errors():
        answer = storage.open(key, "rb").obj.get(**ranged)
    return ObjectBody(answer["Body"])


def _file_range(path: str, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(CHUNK_SIZE, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


class ObjectBody:
    """An S3 object's body in chunks. The response closes it when done, read or not: that
    returns its connection."""

    def __init__(self, body):
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        return self.body.iter_chunks(CHUNK_SIZE)

    def close(self) -> None:
        self.body.close()


def plain_refusal(message: str, size: int) -> HttpResponse:
    return HttpResponse(message, status=416, content_type="text/plain; charset=utf-8")


def download_response(
    artifact: Artifact,
    request: HttpRequest,
    refuse: Callable[[str, int], HttpResponse] = plain_refusal,
    *,
    may_redirect: bool = False,
) -> HttpResponse:
    """An attachment of `application/octet-stream` with `nosniff`, its length, and its
    SHA-256 as ETag and X-Checksum-Sha256; the part asked for by `Range` (206), or `refuse`'s
    answer (416) to a range past the end. A whole blob on the filesystem goes out as a file
    (which the server sends with sendfile), or with ARTIFACT_DIRECT_IO, a large one streams
    from direct reads (registry.directio); on object storage the object streams in chunks,
    or with `may_redirect` and ARTIFACT_DOWNLOAD_REDIRECT, the answer is a redirect to it."""
    sha256, size = artifact.blob_id, artifact.blob.size
    etag = f'"{sha256}"'
    filename = posixpath.basename(artifact.path)
    storage = artifact_storage()
    if may_redirect and settings.ARTIFACT_DOWNLOAD_REDIRECT and not on_filesystem(storage):
        return redirect_response(storage, sha256, filename)
    try:
        part = wanted_range(request, etag, size)
    except Unsatisfiable:
        message = f"the range {request.headers['Range']} starts past the end of {size} bytes"
        response = refuse(message, size)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if part is not None:
        first, last = part
        response = StreamingHttpResponse(
            range_chunks(sha256, first, last - first + 1),
            status=206,
            content_type="application/octet-stream",
        )
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Content-Length"] = str(last - first + 1)
    else:
        chunks = None
        if not on_filesystem(storage):
            # Object storage: streamed as S3 sends it. django-storages' file would read the
            # whole object before the first byte goes out, into the serving process.
            chunks = range_chunks(sha256, 0, size, whole=True) if size else iter(())
        elif settings.ARTIFACT_DIRECT_IO and size >= directio.DIRECT_READ_MIN:
            chunks = directio.blob_chunks(storage.path(blob_key(sha256)))
        if chunks is None:
            response = FileResponse(
                open_blob(sha256),
                as_attachment=True,
                filename=filename,
                content_type="application/octet-stream",
            )
        else:
            response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
            response["Content-Disposition"] = content_disposition_header(True, filename)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["X-Checksum-Sha256"] = sha256
    response["X-Content-Type-Options"] = "nosniff"
    return response


def redirect_response(storage: Storage, sha256: str, filename: str) -> HttpResponse:
    """302 to a presigned URL of the blob, carrying the blob's checksum headers (a client
    checks the bytes it gets from the object store against them)."""
    url = s3.presigned_download_url(
        storage,
        blob_key(sha256),
        content_disposition=content_disposition_header(True, filename),
        expires=settings.ARTIFACT_DOWNLOAD_REDIRECT_SECONDS,
    )
    response = HttpResponseRedirect(url)
    response["ETag"] = f'"{sha256}"'
    response["X-Checksum-Sha256"] = sha256
    # The URL lets whoever holds it read the object until it expires: no cache keeps it.
    response["Cache-Control"] = "no-store"
    return response
