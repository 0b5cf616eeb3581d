"""MLflow's artifact proxy (mlflow-artifacts), read-only, over the artifacts Modelvault
stores: `models/<model>/versions/<number>/<path>` under the proxy's root. Listing answers
MLflow's ListArtifacts (the entries directly under a path); a download streams the blob with
its SHA-256 and honours a Range (registry.downloads, the same response as the REST
API's)."""

from typing import Any

from django.http import HttpResponse, HttpResponseBase

from mlflow_api.errors import error_response
from mlflow_api.mapping import artifact_root
from mlflow_api.views import Call
from registry import validation
from registry.downloads import download_response
from registry.errors import Invalid, NotFound
from registry.models import Artifact, ModelVersion
from registry.permissions import get_version_for_user

REFUSAL = (
    "Modelvault's MLflow artifact proxy is read-only: upload a version's files with "
    "Modelvault's client or REST API"
)


def _split(path: str) -> tuple[str, int, str]:
    """`models/<model>/versions/<number>[/<path>]` as (model, number, path)."""
    parts = path.strip("/").split("/", 4)
    if len(parts) < 4 or parts[0] != "models" or parts[2] != "versions":
        raise Invalid(
            f"artifact path {path!r} is not under models/<model>/versions/<number>, where "
            "the versions' artifacts are"
        )
    number = parts[3]
    if not number.isascii() or not number.isdigit():
        raise Invalid(f"{number!r} in {path!r} is not a version number")
    rest = parts[4] if len(parts) == 5 else ""
    if rest:
        validation.artifact_path(rest)
    return parts[1], int(number), rest


def _version(call: Call, path: str) -> tuple[ModelVersion, str]:
    name, number, rest = _split(path)
    return get_version_for_user(call.user, call.org, name, number), rest


def list_artifacts(call: Call) -> dict[str, Any]:
    """The files and folders directly under `path`, by their base names as MLflow's server
    gives them. A file's own path lists nothing, as in MLflow."""
    version, under = _version(call, call.params.text("path") or "")
    prefix = under + "/" if under else ""
    rows = (
        Artifact.objects.filter(version=version, path__startswith=prefix)
        .order_by("path")
        .values_list("path", "blob__size")
    )
    files: dict[str, dict[str, Any]] = {}
    for path, size in rows:
        name, slash, _ = path[len(prefix) :].partition("/")
        if slash:
            files.setdefault(name, {"path": name, "is_dir": True})
        else:
            files[name] = {"path": name, "is_dir": False, "file_size": size}
    return {"files": list(files.values())}


def download(call: Call, path: str) -> HttpResponseBase:
    version, artifact_path = _version(call, path)
    root = artifact_root(version.model.name, version.number)
    if not artifact_path:
        raise NotFound(f"{root} is a folder: download the files in it")
    artifact = (
        Artifact.objects.filter(version=version, path=artifact_path).select_related("blob").first()
    )
    if artifact is None:
        raise NotFound(f"artifact {artifact_path} not found in {root}")
    return download_response(artifact, call.request, _refuse_range)


def _refuse_range(message: str, size: int) -> HttpResponse:
    return error_response("INVALID_PARAMETER_VALUE", message, 416)
