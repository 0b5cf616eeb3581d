"""Artifacts on S3-compatible storage through django-storages (SPEC 3.5, 5).

moto serves S3 in this process (a thread on a free port), so these run on every pass. The
bucket keeps object versions, so that a second write of the same key would show.
"""

import hashlib
import io
import uuid
from collections.abc import Iterator
from html import escape

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from moto.server import ThreadedMotoServer

from registry.errors import Invalid, Unavailable
from registry.models import Artifact, Blob
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.tokens import token_create
from registry.services.versions import version_create
from registry.storage import artifact_storage, blob_key

pytestmark = pytest.mark.django_db

CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def use_bucket(settings, s3_endpoint: str, name: str) -> None:
    """Switch the artifact storage to bucket `name` (Django builds it anew when STORAGES
    changes)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": True,
                "default_acl": None,
            },
        },
    }


@pytest.fixture
def bucket(s3_endpoint, settings):
    """A fresh versioned bucket, and the artifact storage switched to it."""
    name = f"modelvault-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    use_bucket(settings, s3_endpoint, name)
    return Bucket(client, name)


class Bucket:
    def __init__(self, client, name: str) -> None:
        self.client = client
        self.name = name

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def writes(self) -> list[str]:
        """Every version ever written, deleted or not: one entry per PUT."""
        listing = self.client.list_object_versions(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Versions", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def write(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)


CONTENT = b"weights on object storage\n" * 5000
SHA256 = hashlib.sha256(CONTENT).hexdigest()


def test_it_stores_an_artifact_under_its_content_address(bucket, model, alice):
    version = version_create(actor=alice, model=model)

    artifact = artifact_put(
        actor=alice,
        version=version,
        path="model.bin",
        source=io.BytesIO(CONTENT),
        expected_sha256=SHA256,
    )

    assert "S3Storage" in type(artifact_storage()).__name__
    key = f"blobs/{SHA256[:2]}/{SHA256[2:4]}/{SHA256}"
    assert blob_key(SHA256) == key
    assert bucket.keys() == [key]
    assert bucket.read(key) == CONTENT
    assert artifact.blob_id == SHA256


def test_it_downloads_a_range_from_the_bucket_without_reading_the_rest(bucket, model, alice):
    from django.test import RequestFactory

    from registry.downloads import download_response

    version = version_create(actor=alice, model=model)
    artifact = artifact_put(
        actor=alice, version=version, path="model.bin", source=io.BytesIO(CONTENT)
    )
    request = RequestFactory().get("/", headers={"Range": "bytes=2-5"})
    response = download_response(artifact, request)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == CONTENT[2:6]
    assert response["Content-Range"] == f"bytes 2-5/{len(CONTENT)}"
    whole = download_response(artifact, RequestFactory().get("/"))
    assert b"".join(whole.streaming_content) == CONTENT


def test_it_writes_the_same_content_once(bucket, model, alice):
    first = version_create(actor=alice, model=model, artifacts={"a.bin": io.BytesIO(CONTENT)})
    second = version_create(actor=alice, model=model)

    artifact_put(actor=alice, version=second, path="b.bin", source=io.BytesIO(CONTENT))
    artifact_put(actor=alice, version=first, path="copy.bin", source=io.BytesIO(CONTENT))

    assert bucket.writes() == [blob_key(SHA256)]
    assert Blob.objects.count() == 1
    assert Artifact.objects.filter(blob_id=SHA256).count() == 3


def test_it_stores_nothing_on_a_checksum_mismatch(bucket, model, alice, settings):
    version = version_create(actor=alice, model=model)

    with pytest.raises(Invalid, match="checksum mismatch"):
        artifact_put(
            actor=alice,
            version=version,
            path="model.bin",
            source=io.BytesIO(CONTENT),
            expected_sha256="0" * 64,
        )

    assert bucket.writes() == []
    assert not Blob.objects.exists()
    assert not Artifact.objects.exists()
    assert list(settings.ARTIFACT_TMP_DIR.iterdir()) == []


def test_it_removes_the_object_once_no_artifact_uses_it(
    bucket, model, alice, django_capture_on_commit_callbacks
):
    shared = version_create(actor=alice, model=model, artifacts={"a.bin": io.BytesIO(CONTENT)})
    other = version_create(actor=alice, model=model, artifacts={"a.bin": io.BytesIO(CONTENT)})

    # Collection is queued after commit (and runs eagerly in the tests).
    with django_capture_on_commit_callbacks(execute=True) as queued:
        artifact_delete(actor=alice, version=shared, path="a.bin")
    assert len(queued) == 2  # the blob collection, and the activity event's outbox hook
    assert bucket.keys() == [blob_key(SHA256)]  # still used by the other version

    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(actor=alice, version=other, path="a.bin")
    assert bucket.keys() == []
    assert not Blob.objects.exists()


def test_it_verifies_artifacts_on_object_storage(bucket, model, alice, capsys):
    version_create(actor=alice, model=model, artifacts={"model.bin": io.BytesIO(CONTENT)})
    call_command("verify_artifacts")
    assert "1 intact, 0 corrupt, 0 missing" in capsys.readouterr().out

    bucket.write(blob_key(SHA256), b"flipped bits")
    with pytest.raises(CommandError, match="1 corrupt"):
        call_command("verify_artifacts")
    assert f"corrupt blob sha256:{SHA256}" in capsys.readouterr().err


def test_it_finds_orphaned_bytes_on_object_storage(bucket, model, alice, capsys):
    orphan = hashlib.sha256(b"left behind").hexdigest()
    bucket.write(blob_key(orphan), b"left behind")

    call_command("verify_artifacts")

    assert f"orphaned bytes sha256:{orphan}" in capsys.readouterr().err


# A bucket that does not exist: the server's fault, not the caller's. Every surface says so
# by name (503), and nothing is stored.

MISSING = "modelvault-never-made"
GONE = f"artifact storage bucket {MISSING!r} does not exist"


@pytest.fixture
def missing_bucket(s3_endpoint, settings) -> str:
    use_bucket(settings, s3_endpoint, MISSING)
    return MISSING


def api_client(user) -> Client:
    token = token_create(actor=user, user=user, name="tests")[1]
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_it_refuses_an_upload_to_a_missing_bucket_by_name(missing_bucket, model, alice, settings):
    version = version_create(actor=alice, model=model)

    with pytest.raises(Unavailable, match=GONE):
        artifact_put(actor=alice, version=version, path="model.bin", source=io.BytesIO(CONTENT))

    assert not Blob.objects.exists()
    assert not Artifact.objects.exists()
    assert list(settings.ARTIFACT_TMP_DIR.iterdir()) == []


def test_it_answers_503_to_an_api_upload_to_a_missing_bucket(missing_bucket, model, alice):
    version = version_create(actor=alice, model=model)

    response = api_client(alice).put(
        f"/api/v1/orgs/acme/models/fraud/versions/{version.number}/artifacts/model.bin",
        data=CONTENT,
        content_type="application/octet-stream",
    )

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith(GONE)
    assert not Artifact.objects.exists()


def test_it_answers_503_to_a_download_from_a_bucket_that_is_gone(
    bucket, s3_endpoint, settings, model, alice, carol
):
    version = version_create(actor=alice, model=model, artifacts={"model.bin": io.BytesIO(CONTENT)})
    use_bucket(settings, s3_endpoint, MISSING)  # renamed, removed, or a wrong setting
    path = f"/orgs/acme/models/fraud/versions/{version.number}/artifacts/model.bin"

    by_api = api_client(carol).get(f"/api/v1{path}")
    assert by_api.status_code == 503
    assert by_api.json()["error"]["message"].startswith(GONE)

    browser = Client()
    browser.force_login(carol)
    page = browser.get(path)
    assert page.status_code == 503
    assert escape(GONE) in page.content.decode()
