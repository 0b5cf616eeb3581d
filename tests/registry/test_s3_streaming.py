"""Artifacts on S3 move in bounded memory (SPEC 3.5, 5): the memory a download takes in the
serving process does not grow with the object's size.

moto's standalone server runs as a process of its own on a loopback port, as S3 would be:
its memory is not the test's, so tracemalloc measures only what the server's code holds.
"""

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

from registry.downloads import download_response
from registry.services.artifacts import artifact_put
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

SIZE = 48 * 1024 * 1024
# What a download may hold at once: a few of its 1 MiB chunks and boto3's buffers.
BOUND = 8 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_process() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
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
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client(
        "s3", endpoint_url=s3_process, region_name="us-east-1", **credentials
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
