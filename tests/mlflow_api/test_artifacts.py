"""MLflow's client downloads a version's stored files through the artifact proxy
(mlflow-artifacts), by alias and by number; each file is the stored blob, checksum for
checksum, streamed with its SHA-256."""

import hashlib
import io
import os
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from registry.models import Artifact, Visibility
from registry.services.aliases import alias_set
from registry.services.registered_models import model_update
from registry.services.versions import version_create

FILES = {
    "MLmodel": b"flavors: {}\n",
    "model.pkl": os.urandom(3 * 1024 * 1024 + 7),
    "conf/params.json": b'{"lr": 0.1}',
    "conf/deep/labels.txt": b"fraud\nlegit\n",
}
ROOT = "/mlflow/acme/api/2.0/mlflow-artifacts/artifacts/models/fraud/versions/1"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def stored(model, cast):
    version = version_create(
        actor=cast.alice,
        model=model,
        artifacts={path: io.BytesIO(body) for path, body in FILES.items()},
    )
    alias_set(actor=cast.alice, model=model, name="champion", version=version)
    return version


def _downloaded(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): _sha256(path)
        for path in root.rglob("*")
        if path.is_file()
    }


def test_it_downloads_a_version_by_alias_and_by_number(mlflow_as, stored, tmp_path):
    carol = mlflow_as("carol")
    expected = dict(Artifact.objects.filter(version=stored).values_list("path", "blob_id"))
    assert len(expected) == len(FILES)
    uri = carol.get_model_version_download_uri("fraud", "1")
    assert uri == "mlflow-artifacts:/models/fraud/versions/1"
    by_alias = Path(carol.download("models:/fraud@champion", tmp_path / "by-alias"))
    assert _downloaded(by_alias) == expected
    by_number = Path(carol.download("models:/fraud/1", tmp_path / "by-number"))
    assert _downloaded(by_number) == expected
    by_stage = Path(carol.download("models:/fraud/None", tmp_path / "by-stage"))
    assert _downloaded(by_stage) == expected
    latest = Path(carol.download("models:/fraud/latest", tmp_path / "latest"))
    assert _downloaded(latest) == expected
    one = Path(carol.download("models:/fraud/1/conf/params.json", tmp_path / "one"))
    assert one.read_bytes() == FILES["conf/params.json"]


def test_it_hides_the_files_of_a_model_the_caller_may_not_view(mlflow_as, stored, cast, tmp_path):
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("mallory").download("models:/fraud@champion", tmp_path / "a")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    model_update(actor=cast.admin, model=stored.model, visibility=Visibility.PRIVATE)
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("carol").download("models:/fraud/1", tmp_path / "b")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert not any((tmp_path / "b").rglob("*.pkl"))


def test_it_streams_a_file_with_its_checksum(raw, stored, tokens):
    token = tokens["carol"]
    response = raw("GET", f"{ROOT}/model.pkl", token)
    assert response.status_code == 200
    assert response.streaming  # never the whole file in memory
    sha256 = hashlib.sha256(FILES["model.pkl"]).hexdigest()
    assert response["X-Checksum-Sha256"] == sha256
    assert response["ETag"] == f'"{sha256}"'
    assert response["Content-Type"] == "application/octet-stream"
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == sha256


def test_it_lists_a_folder_as_mlflows_server_does(raw, stored, tokens):
    token = tokens["carol"]
    listing = "/mlflow/acme/api/2.0/mlflow-artifacts/artifacts"
    top = raw("GET", listing, token, path="models/fraud/versions/1").json()["files"]
    assert top == [
        {"path": "MLmodel", "is_dir": False, "file_size": len(FILES["MLmodel"])},
        {"path": "conf", "is_dir": True},
        {"path": "model.pkl", "is_dir": False, "file_size": len(FILES["model.pkl"])},
    ]
    conf = raw("GET", listing, token, path="models/fraud/versions/1/conf").json()["files"]
    assert [f["path"] for f in conf] == ["deep", "params.json"]
    assert raw("GET", listing, token, path="models/fraud/versions/1/model.pkl").json() == {
        "files": []
    }
    outside = raw("GET", listing, token, path="../../etc")
    assert (outside.status_code, outside.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    missing = raw("GET", f"{ROOT}/nothing.bin", token)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_it_refuses_uploads_through_the_proxy(raw, stored, tokens):
    token = tokens["alice"]
    for method in ("PUT", "DELETE"):
        response = raw(method, f"{ROOT}/model.pkl", token)
        assert response.status_code == 405
        assert "read-only" in response.json()["message"]
    assert Artifact.objects.filter(version=stored).count() == len(FILES)


def test_it_hands_out_the_external_source_of_a_version_without_files(mlflow_as, model):
    alice = mlflow_as("alice")
    alice.create_model_version("fraud", "s3://bucket/fraud/1", run_id="r1")
    assert alice.get_model_version_download_uri("fraud", "1") == "s3://bucket/fraud/1"
