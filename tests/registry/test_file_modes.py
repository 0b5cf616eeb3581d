"""What the server writes to disk is its own and its group's (config/files.py): folders 0750,
files 0640, whatever the process's umask. Checked with os.stat after an upload through the
service and through the API, and on the folders the settings make (VAR_DIR, beat's)."""

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from registry.services.artifacts import artifact_put
from registry.services.tokens import token_create
from registry.services.versions import version_create
from registry.storage import blob_key
from tests.registry.test_settings import SECRET, read_settings

CONTENT = b"weights kept from other users\n" * 1000


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def fresh_folders(settings, tmp_path) -> Path:
    """Artifact and staging folders that do not exist yet, under a parent of mode 0700."""
    parent = tmp_path / "data"
    parent.mkdir(mode=0o700)
    settings.ARTIFACT_ROOT = parent / "artifacts"
    settings.ARTIFACT_TMP_DIR = parent / "tmp"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": settings.ARTIFACT_ROOT},
        },
    }
    return parent


def assert_private(parent: Path, sha256: str) -> None:
    blob = parent / "artifacts" / blob_key(sha256)
    assert mode(blob) == 0o640
    folder = blob.parent
    while folder != parent:  # blobs/ab/cd, blobs/ab, blobs, the artifact root
        assert mode(folder) == 0o750, folder
        folder = folder.parent
    assert mode(parent / "tmp") == 0o750


@pytest.mark.parametrize("mask", [0o077, 0o002])
def test_it_keeps_an_artifact_uploaded_through_the_service_private(
    fresh_folders, model, alice, mask
):
    version = version_create(actor=alice, model=model)

    with umask(mask):
        artifact = artifact_put(
            actor=alice, version=version, path="model.bin", source=io.BytesIO(CONTENT)
        )

    assert_private(fresh_folders, artifact.blob_id)


def test_it_keeps_an_artifact_uploaded_through_the_api_private(fresh_folders, model, alice):
    version = version_create(actor=alice, model=model)
    token = token_create(actor=alice, user=alice, name="tests")[1]
    client = Client(headers={"Authorization": f"Bearer {token}"})

    with umask(0o002):
        response = client.put(
            f"/api/v1/orgs/acme/models/fraud/versions/{version.number}/artifacts/model.bin",
            data=CONTENT,
            content_type="application/octet-stream",
        )

    assert response.status_code == 201
    assert_private(fresh_folders, response.json()["sha256"])


def test_it_keeps_a_blob_copied_from_another_filesystem_private(
    fresh_folders, settings, model, alice
):
    # A staging folder on another filesystem: the blob is a copy, not a rename.
    if os.stat("/dev/shm").st_dev == os.stat(fresh_folders).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's folders")
    version = version_create(actor=alice, model=model)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        settings.ARTIFACT_TMP_DIR = Path(elsewhere) / "tmp"
        with umask(0o002):
            artifact = artifact_put(
                actor=alice, version=version, path="model.bin", source=io.BytesIO(CONTENT)
            )
        assert mode(Path(elsewhere) / "tmp") == 0o750

    assert mode(fresh_folders / "artifacts" / blob_key(artifact.blob_id)) == 0o640


def test_it_makes_var_dir_and_beats_folder_private(tmp_path):
    var_dir = tmp_path / "var" / "modelvault"
    schedule = tmp_path / "beat" / "state" / "celerybeat-schedule"
    env = {
        **SECRET,
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",  # named, never connected to
        "CELERY_BEAT_SCHEDULE_FILENAME": str(schedule),
    }

    values = read_settings(
        env, var_dir, "FILE_UPLOAD_PERMISSIONS", "FILE_UPLOAD_DIRECTORY_PERMISSIONS"
    )

    assert values == {"FILE_UPLOAD_PERMISSIONS": 0o640, "FILE_UPLOAD_DIRECTORY_PERMISSIONS": 0o750}
    assert mode(var_dir) == mode(var_dir.parent) == 0o750  # the embedded database's folder
    assert mode(schedule.parent) == mode(schedule.parent.parent) == 0o750
