"""An artifact's bytes as an HTTP download, the same from the UI and the API (SPEC 3.5)."""

import posixpath

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from registry.models import Artifact
from registry.storage import blob_chunks, open_blob


def download_response(artifact: Artifact) -> FileResponse | StreamingHttpResponse:
    """An attachment of `application/octet-stream` with `nosniff`, its length, and its
    SHA-256 as ETag and X-Checksum-Sha256. A large blob on the filesystem streams from
    direct reads (registry.storage.blob_chunks); anything else goes out as a file, which
    the server may send with sendfile."""
    sha256, size = artifact.blob_id, artifact.blob.size
    filename = posixpath.basename(artifact.path)
    chunks = blob_chunks(sha256, size)
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
    response["ETag"] = f'"{sha256}"'
    response["X-Checksum-Sha256"] = sha256
    response["X-Content-Type-Options"] = "nosniff"
    return response
