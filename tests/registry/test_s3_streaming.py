"""Artifacts on S3 move in bounded memory (SPEC 3.5, 5): the memory an upload or a download
takes in the serving process does not grow with the object's size, and an upload writes no
local file and leaves nothing under uploads/, stored or refused.

moto's standalone server runs as a process of its own on a loopback port, as S3 would be:
its memory is not the test's, so tracemalloc measures only what the server's code holds.
"""

import contextlib
import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.test import RequestFactory

from registry import s3
from registry.downloads import download_response
from registry.errors import Invalid
from registry.models import Artifact, Blob
from registry.services.artifacts import artifact_put
from registry.services.versions import version_create
from registry.storage import artifact_storage, blob_key

pytestmark = pytest.mark.django_db

SIZE = 48 * 1024 * 1024
# What a download may hold at once: a few of its 1 MiB chunks and boto3's buffers.
BOUND = 8 * 1024 * 1024
# What an upload may hold at once: the 8 MiB part being read, the parts on their way, a 1 MiB
# chunk and boto3's buffers.
UPLOAD_BOUND = (s3.PARTS_IN_FLIGHT + 1) * s3.PART_SIZE + 4 * 1024 * 1024
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_process() -> Iterator[str]:
    with moto_server() as url:
        yield url


@contextlib.contextmanager
def moto_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, with `env` added to its
    environment; its URL while it runs."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not listen"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_artifacts(s3_process, settings) -> str:
    name = f"modelvault-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=s3_process, region_name="us-east-1", **CREDENTIALS
    ).create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_process,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": True,
                "default_acl": None,
                "location": "modelvault",  # as production has it: keys under a prefix
            },
        },
    }
    return name


def test_a_download_from_the_bucket_holds_a_few_chunks_whatever_its_size(
    s3_artifacts, model, alice
):
    payload = os.urandom(1024 * 1024) * (SIZE // (1024 * 1024))
    version = version_create(actor=alice, model=model)
    artifact = artifact_put(
        actor=alice, version=version, path="big.bin", source=io.BytesIO(payload)
    )
    del payload
    tracemalloc.start()
    try:
        response = download_response(artifact, RequestFactory().get("/"))
        received = 0
        for chunk in response.streaming_content:
            received += len(chunk)
        response.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == SIZE
    assert peak < BOUND, f"a {SIZE >> 20} MiB download held {peak >> 20} MiB at its peak"


class Leftovers:
    """What an upload may leave in the bucket and on the local disk."""

    def __init__(self, endpoint: str, bucket: str, settings) -> None:
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS
        )
        self.bucket = bucket
        self.staging = Path(settings.ARTIFACT_TMP_DIR)

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def uploads(self) -> list[str]:
        listing = self.client.list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in listing.get("Uploads", [])]

    def staged(self) -> list[Path]:
        return sorted(self.staging.rglob("*")) if self.staging.exists() else []


@pytest.fixture
def leftovers(s3_process, s3_artifacts, settings) -> Leftovers:
    return Leftovers(s3_process, s3_artifacts, settings)


def test_an_upload_to_the_bucket_holds_a_few_parts_whatever_its_size(
    s3_artifacts, leftovers, model, alice
):
    payload = os.urandom(1024 * 1024) * (SIZE // (1024 * 1024))
    sha256 = hashlib.sha256(payload).hexdigest()
    source = io.BytesIO(payload)
    version = version_create(actor=alice, model=model)
    # The storage's boto3 client is made at its first call: its service model (some 12 MiB
    # of Python objects, once per process and thread) is not the upload's.
    assert not artifact_storage().exists(blob_key(sha256))
    tracemalloc.start()
    try:
        artifact = artifact_put(
            actor=alice,
            version=version,
            path="big.bin",
            source=source,
            expected_sha256=sha256,
            expected_size=SIZE,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (artifact.blob_id, artifact.blob.size) == (sha256, SIZE)
    assert peak < UPLOAD_BOUND, f"a {SIZE >> 20} MiB upload held {peak >> 20} MiB at its peak"
    assert leftovers.keys() == [f"modelvault/{blob_key(sha256)}"]
    assert leftovers.uploads() == []
    assert leftovers.staged() == []  # no local copy, not even a staging folder
    body = leftovers.client.get_object(Bucket=s3_artifacts, Key=leftovers.keys()[0])["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == sha256


class CutOff(io.RawIOBase):
    """A body whose connection closes after `sent` of its declared bytes: reads then give
    b"", as a WSGI server gives them."""

    def __init__(self, sent: int) -> None:
        self.left = sent

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"z" * n
        self.left -= n
        return n


@pytest.mark.parametrize(
    ("source", "expected", "refusal"),
    [
        (lambda: io.BytesIO(b"w" * SIZE), {"expected_sha256": "0" * 64}, "checksum mismatch"),
        (lambda: CutOff(SIZE - 5), {"expected_size": SIZE}, "were declared: it was cut off"),
    ],
    ids=["checksum-mismatch", "cut-off"],
)
def test_a_refused_upload_leaves_nothing_in_the_bucket(
    s3_artifacts, leftovers, model, alice, source, expected, refusal
):
    version = version_create(actor=alice, model=model)

    with pytest.raises(Invalid, match=refusal):
        artifact_put(actor=alice, version=version, path="big.bin", source=source(), **expected)

    assert leftovers.uploads() == []  # its parts were sent, and the upload aborted
    assert leftovers.keys() == []
    assert leftovers.staged() == []
    assert not Artifact.objects.filter(version=version).exists()
    assert not Blob.objects.exists()
