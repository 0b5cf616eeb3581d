"""Artifact bytes over HTTP, streamed both ways with bounded memory (SPEC 3.5).

The upload reads the raw body from the request as a file, in chunks: never request.body.
A declared size over the limit is refused before one byte is read, and a body of another
size than declared (cut off) is refused after, leaving nothing stored.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from api import schemas as s
from api.errors import error_response
from api.pagination import paginate
from api.render import artifact_json
from config.metrics import UPLOAD_BYTES
from registry.downloads import download_response
from registry.errors import Invalid, NotFound, TooLarge
from registry.models import Artifact
from registry.permissions import get_version_for_user
from registry.services.artifacts import artifact_delete, artifact_put

router = Router(tags=["artifacts"])
E = s.ERRORS
ARTIFACTS = "/orgs/{org}/models/{model}/versions/{number}/artifacts"
BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}


@router.get(ARTIFACTS, response={200: s.ArtifactPage, **E})
def list_artifacts(
    request: HttpRequest,
    org: str,
    model: str,
    number: s.Number,
    cursor: str | None = None,
    limit: s.Limit | None = None,
):
    version = get_version_for_user(request.auth, org, model, number)
    artifacts = Artifact.objects.filter(version=version).select_related("blob")
    return paginate(artifacts, keys=["path"], cursor=cursor, limit=limit, render=artifact_json)


def _declared_size(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH") or ""
    if not raw:
        return None
    try:
        size = int(raw)
    except ValueError:
        raise Invalid("Content-Length is not a number") from None
    if size < 0:
        raise Invalid("Content-Length is not a number")
    return size


@router.put(
    ARTIFACTS + "/{path:path}",
    response={201: s.ArtifactOut, **E},
    openapi_extra={"requestBody": {"required": True, **BINARY}},
)
def put_artifact(request: HttpRequest, org: str, model: str, number: s.Number, path: str):
    version = get_version_for_user(request.auth, org, model, number, "write")
    limit = settings.ARTIFACT_MAX_SIZE
    size = _declared_size(request)
    if size is not None and size > limit:
        raise TooLarge(f"the artifact is larger than the limit of {limit} bytes")
    artifact = artifact_put(
        actor=request.auth,
        version=version,
        path=path,
        source=request,  # file-like: read in chunks, never buffered whole
        expected_sha256=request.headers.get("X-Checksum-Sha256") or None,
        # A body that ends before its Content-Length (the client or the network cut it
        # off) reads as shorter, not as an error: compared here, it is refused.
        expected_size=size,
        max_size=limit,
    )
    UPLOAD_BYTES.inc(artifact.blob.size)
    return Status(201, artifact_json(artifact))


@router.get(
    ARTIFACTS + "/{path:path}",
    response={200: None, **E},
    openapi_extra={
        "responses": {
            200: BINARY,
            206: {"description": "the part asked for by Range", **BINARY},
            302: {"description": "with ARTIFACT_DOWNLOAD_REDIRECT: to a presigned URL"},
        }
    },
)
def get_artifact(request: HttpRequest, org: str, model: str, number: s.Number, path: str):
    version = get_version_for_user(request.auth, org, model, number)
    artifact = Artifact.objects.filter(version=version, path=path).select_related("blob").first()
    if artifact is None:
        raise NotFound(f"artifact {path} not found in version {number}")
    return download_response(artifact, request, _refuse_range, may_redirect=True)


def _refuse_range(message: str, size: int) -> HttpResponse:
    return error_response(416, message, code="range_not_satisfiable", details={"size": size})


@router.delete(ARTIFACTS + "/{path:path}", response={204: None, **E})
def delete_artifact(request: HttpRequest, org: str, model: str, number: s.Number, path: str):
    version = get_version_for_user(request.auth, org, model, number, "write")
    artifact_delete(actor=request.auth, version=version, path=path)
    return Status(204, None)
