"""Artifacts on S3-compatible storage through django-storages (SPEC 3.5, 5): uploads stream
into a temporary object as a multipart upload and are copied under their key on the
server; a failed one is aborted; what a killed server leaves is reported and swept.

moto serves S3 in this process (a thread on a free port), so these run on every pass. The
bucket keeps object versions, so that a second write of the same key would show.
"""

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from html import escape
from pathlib import Path

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from moto.server import ThreadedMotoServer

from registry import s3
from registry.errors import Invalid, TooLarge, Unavailable
from registry.models import Artifact, Blob
from registry.services import artifacts as artifact_services
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.tokens import token_create
from registry.services.versions import version_create
from registry.storage import artifact_storage, blob_key, staged_upload
from registry.tasks import sweep_unfinished_uploads

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

    def uploads(self) -> list[str]:
        """The keys of multipart uploads in progress."""
        listing = self.client.list_multipart_uploads(Bucket=self.name)
        return sorted(upload["Key"] for upload in listing.get("Uploads", []))

    def start_upload(self, key: str, part: bytes) -> str:
        """A multipart upload with one part sent, as a server killed midway leaves it."""
        upload_id = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        self.client.upload_part(
            Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=1, Body=part
        )
        return upload_id


def staged_files(settings) -> list[Path]:
    """Files under ARTIFACT_TMP_DIR: on S3 an upload stages nothing there."""
    folder = Path(settings.ARTIFACT_TMP_DIR)
    return sorted(folder.rglob("*")) if folder.exists() else []


CONTENT = b"weights on object storage\n" * 5000
SHA256 = hashlib.sha256(CONTENT).hexdigest()
MIB = 1024 * 1024
# More than two parts (s3.PART_SIZE), the last one short.
LARGE = os.urandom(MIB) * 20 + b"tail"
LARGE_SHA256 = hashlib.sha256(LARGE).hexdigest()


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


def test_it_streams_a_declared_upload_in_parts_straight_to_its_content_address(
    bucket, model, alice, settings
):
    version = version_create(actor=alice, model=model)

    artifact = artifact_put(
        actor=alice,
        version=version,
        path="model.bin",
        source=io.BytesIO(LARGE),
        expected_sha256=LARGE_SHA256,
        expected_size=len(LARGE),
    )

    assert (artifact.blob_id, artifact.blob.size) == (LARGE_SHA256, len(LARGE))
    assert bucket.keys() == [blob_key(LARGE_SHA256)]
    # One write, under its content address: no temporary object, no copy.
    assert bucket.writes() == [blob_key(LARGE_SHA256)]
    head = bucket.client.head_object(Bucket=bucket.name, Key=blob_key(LARGE_SHA256))
    assert head["ETag"].endswith('-3"')  # the multipart upload itself: three parts
    assert bucket.uploads() == []
    assert bucket.read(blob_key(LARGE_SHA256)) == LARGE
    assert staged_files(settings) == []


def test_it_streams_an_undeclared_upload_to_a_temporary_object_and_copies_it_into_place(
    bucket, model, alice
):
    version = version_create(actor=alice, model=model)

    artifact = artifact_put(
        actor=alice, version=version, path="model.bin", source=io.BytesIO(LARGE)
    )

    assert artifact.blob_id == LARGE_SHA256
    assert bucket.keys() == [blob_key(LARGE_SHA256)]
    # The temporary object's own version went too: nothing of it is kept.
    assert bucket.writes() == [blob_key(LARGE_SHA256)]
    assert bucket.uploads() == []
    assert bucket.read(blob_key(LARGE_SHA256)) == LARGE


@pytest.mark.parametrize("body", [CONTENT, LARGE], ids=["one-part", "multipart"])
def test_a_declared_upload_of_stored_content_writes_nothing(bucket, model, alice, body):
    digest = hashlib.sha256(body).hexdigest()
    first = version_create(actor=alice, model=model)
    second = version_create(actor=alice, model=model)

    for version in (first, second):
        artifact_put(
            actor=alice,
            version=version,
            path="model.bin",
            source=io.BytesIO(body),
            expected_sha256=digest,
        )

    assert bucket.writes() == [blob_key(digest)]  # the second upload was aborted, not written
    assert bucket.uploads() == []
    assert Artifact.objects.filter(blob_id=digest).count() == 2


def test_it_copies_an_object_past_the_threshold_in_parts(bucket, model, alice, monkeypatch):
    monkeypatch.setattr(s3, "COPY_PART_SIZE", 8 * MIB)
    version = version_create(actor=alice, model=model)

    artifact_put(actor=alice, version=version, path="model.bin", source=io.BytesIO(LARGE))

    head = bucket.client.head_object(Bucket=bucket.name, Key=blob_key(LARGE_SHA256))
    assert head["ETag"].endswith('-3"')  # UploadPartCopy: three parts, copied on the server
    assert bucket.read(blob_key(LARGE_SHA256)) == LARGE
    assert bucket.keys() == [blob_key(LARGE_SHA256)]


def breaking_off(chunks: int):
    """A body whose connection breaks after `chunks` MiB."""
    for _ in range(chunks):
        yield b"b" * MIB
    raise ConnectionResetError("the client went away")


@pytest.mark.parametrize(
    ("source", "options", "error"),
    [
        (lambda: io.BytesIO(LARGE), {"expected_sha256": "0" * 64}, Invalid),
        (lambda: io.BytesIO(LARGE), {"expected_size": len(LARGE) + 1}, Invalid),
        (lambda: io.BytesIO(LARGE), {"max_size": 18 * MIB}, TooLarge),
        (lambda: breaking_off(19), {}, ConnectionResetError),
    ],
    ids=["checksum-mismatch", "cut-off", "too-large", "broken-off"],
)
def test_it_aborts_a_failed_multipart_upload(
    bucket, model, alice, settings, source, options, error
):
    version = version_create(actor=alice, model=model)

    with pytest.raises(error):
        artifact_put(actor=alice, version=version, path="model.bin", source=source(), **options)

    assert bucket.uploads() == []
    assert bucket.writes() == []
    assert not Blob.objects.exists()
    assert staged_files(settings) == []


def test_it_leaves_nothing_when_the_transaction_fails_after_placing(
    bucket, model, alice, monkeypatch, settings
):
    version = version_create(actor=alice, model=model)

    def fail(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(artifact_services, "event_record", fail)
    with pytest.raises(RuntimeError, match="went away"):
        artifact_put(actor=alice, version=version, path="model.bin", source=io.BytesIO(LARGE))

    assert bucket.keys() == []  # the placed blob removed again, the temporary object gone
    assert bucket.uploads() == []
    assert not Blob.objects.exists()
    assert not Artifact.objects.exists()


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

    assert bucket.writes() == []  # one part, refused before it was sent
    assert bucket.uploads() == []
    assert not Blob.objects.exists()
    assert not Artifact.objects.exists()
    assert staged_files(settings) == []


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


# What a server killed mid-upload leaves in the bucket: a multipart upload in progress, or a
# temporary object not yet deleted. verify_artifacts names them; it and beat's sweep remove
# them once they are old enough that no upload can still be writing them.


@pytest.fixture
def left_behind(bucket) -> dict[str, str]:
    storage = artifact_storage()
    upload_key = s3.object_key(storage, f"{s3.UPLOADS}/{uuid.uuid4().hex}")
    object_key = s3.object_key(storage, f"{s3.UPLOADS}/{uuid.uuid4().hex}")
    # A declared upload goes straight to its content address, never completed there.
    declared_key = s3.object_key(storage, blob_key(hashlib.sha256(b"never").hexdigest()))
    bucket.start_upload(upload_key, b"p" * (5 * MIB))
    bucket.start_upload(declared_key, b"d" * (5 * MIB))
    bucket.write(object_key, b"a whole upload, never copied into place")
    return {"upload": upload_key, "declared": declared_key, "object": object_key}


def unfinished_lines(err: str) -> list[str]:
    """verify_artifacts' lines for unfinished uploads, each cut before its age."""
    return sorted(
        line.split(": never stored as a blob")[0]
        for line in err.splitlines()
        if line.startswith("unfinished upload")
    )


def test_it_reports_and_removes_unfinished_uploads_in_the_bucket(
    bucket, left_behind, model, alice, capsys
):
    version_create(actor=alice, model=model, artifacts={"model.bin": io.BytesIO(CONTENT)})
    where = f"s3://{bucket.name}"

    call_command("verify_artifacts")
    out, err = capsys.readouterr()
    assert "1 intact, 0 corrupt, 0 missing; 0 orphaned; 3 unfinished uploads" in out
    assert unfinished_lines(err) == sorted(
        [
            f"unfinished upload {where}/{left_behind['object']}",
            f"unfinished upload {where}/{left_behind['upload']} (multipart upload)",
            f"unfinished upload {where}/{left_behind['declared']} (multipart upload)",
        ]
    )

    call_command("verify_artifacts", "--delete-orphans")  # written moments ago: kept
    assert "3 unfinished uploads (0 deleted)" in capsys.readouterr().out
    assert bucket.uploads() == sorted([left_behind["upload"], left_behind["declared"]])

    call_command("verify_artifacts", "--delete-orphans", "--orphan-age", "0")
    assert "3 unfinished uploads (3 deleted)" in capsys.readouterr().out
    assert bucket.uploads() == []
    assert bucket.writes() == [blob_key(SHA256)]  # the object's version gone too
    call_command("verify_artifacts")
    assert "0 unfinished uploads" in capsys.readouterr().out


def test_the_sweep_removes_only_unfinished_uploads_older_than_a_day(bucket, left_behind, settings):
    assert settings.ARTIFACT_SWEEP_AFTER == 24 * 3600
    assert sweep_unfinished_uploads.delay().get() == 0  # written moments ago
    assert bucket.uploads() == sorted([left_behind["upload"], left_behind["declared"]])
    assert bucket.keys() == [left_behind["object"]]

    settings.ARTIFACT_SWEEP_AFTER = 0
    assert sweep_unfinished_uploads.delay().get() == 3

    assert bucket.uploads() == []
    assert bucket.keys() == []
    assert sweep_unfinished_uploads.delay().get() == 0  # nothing left: nothing to do


def test_an_upload_in_progress_is_reported_and_kept(bucket, capsys):
    """An upload whose body is still arriving (one part sent, the rest to come) is an
    unfinished upload to verify_artifacts, written moments ago: neither it nor the sweep
    takes it, and it completes."""
    sent_a_part, go_on = threading.Event(), threading.Event()
    stored: list[tuple[str, int]] = []

    def body():
        yield b"s" * (s3.PART_SIZE + 1)  # one full part goes once a byte follows it
        sent_a_part.set()
        go_on.wait(30)
        yield b"rest"

    def upload():
        with staged_upload(body()) as staged:
            stored.append((staged.sha256, staged.size))

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        assert sent_a_part.wait(30)
        assert len(bucket.uploads()) == 1
        call_command("verify_artifacts", "--delete-orphans")
        assert "1 unfinished uploads (0 deleted)" in capsys.readouterr().out
        assert sweep_unfinished_uploads.delay().get() == 0
    finally:
        go_on.set()
        uploader.join(30)
    assert stored == [
        (hashlib.sha256(b"s" * (s3.PART_SIZE + 1) + b"rest").hexdigest(), s3.PART_SIZE + 5)
    ]
    assert bucket.uploads() == []
    assert bucket.keys() == []  # staged only: its temporary object went when it was done


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
    with pytest.raises(Unavailable, match=GONE):
        artifact_put(actor=alice, version=version, path="model.bin", source=io.BytesIO(LARGE))

    assert not Blob.objects.exists()
    assert not Artifact.objects.exists()
    assert staged_files(settings) == []


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
