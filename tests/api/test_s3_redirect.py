"""ARTIFACT_DOWNLOAD_REDIRECT (SPEC 3.5): on S3, a download from the API or the UI is a 302
to a presigned URL of the object, with the checksum headers of a streamed download; the
object store serves the bytes (and ranges) with the same attachment headers. What the caller
may not view is a 404 with no redirect. The client follows the redirect without its token
and checks the SHA-256.

The S3 side is moto's standalone server (tests/registry/test_s3_streaming.py), here with its
request recorder writing to a temporary file: the requests the object store received are
read back from it.
"""

import hashlib
import io
import json
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.urls import reverse

from registry.services.artifacts import artifact_put
from registry.services.versions import version_create
from registry.storage import blob_key
from tests.registry.test_s3_streaming import CREDENTIALS, moto_server, s3_artifacts

modelvault = pytest.importorskip(
    "modelvault", reason="the client is not installed: pip install -e ./client"
)

from modelvault import Client  # noqa: E402
from modelvault.errors import ChecksumMismatch  # noqa: E402

__all__ = ["s3_artifacts"]  # the fixture, switched to this module's moto server

PAYLOAD = os.urandom(300 * 1024) + b"tail"
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FILENAME = "model weights.bin"


@pytest.fixture(scope="module")
def s3_process(tmp_path_factory) -> Iterator[str]:
    """moto_server on a loopback port, as in test_s3_streaming, with its recorder's file in
    a temporary folder (by default it writes one into the working directory)."""
    recording = tmp_path_factory.mktemp("moto") / "recording"
    with moto_server({"MOTO_RECORDER_FILEPATH": str(recording)}) as url:
        yield url


class Recorder:
    """moto's request recorder, through its HTTP API."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def start(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/recorder/reset-recording").raise_for_status()
        httpx.post(f"{self.endpoint}/moto-api/recorder/start-recording").raise_for_status()

    def requests(self) -> list[dict]:
        httpx.post(f"{self.endpoint}/moto-api/recorder/stop-recording").raise_for_status()
        text = httpx.get(f"{self.endpoint}/moto-api/recorder/download-recording").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def redirecting(s3_artifacts, settings) -> str:
    settings.ARTIFACT_DOWNLOAD_REDIRECT = True
    settings.ARTIFACT_DOWNLOAD_REDIRECT_SECONDS = 120
    return s3_artifacts


@pytest.fixture
def stored(redirecting, model, alice):
    version = version_create(actor=alice, model=model)
    artifact_put(actor=alice, version=version, path=f"out/{FILENAME}", source=io.BytesIO(PAYLOAD))
    return version


def api_path(version) -> str:
    model = version.model
    where = f"/orgs/{model.org.slug}/models/{model.name}/versions/{version.number}"
    return f"{where}/artifacts/out/{FILENAME}"


def ui_path(version) -> str:
    model = version.model
    return reverse(
        "catalog:artifact-download",
        kwargs={
            "org": model.org.slug,
            "model": model.name,
            "number": version.number,
            "path": f"out/{FILENAME}",
        },
    )


def assert_presigned_redirect(response, s3_endpoint: str, bucket: str) -> str:
    assert response.status_code == 302
    location = response["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint
    assert parts.path == f"/{bucket}/modelvault/{blob_key(SHA256)}"
    query = parse_qs(parts.query)
    assert "Signature" in query or "X-Amz-Signature" in query
    assert response["X-Checksum-Sha256"] == SHA256
    assert response["ETag"] == f'"{SHA256}"'
    assert response["Cache-Control"] == "no-store"
    return location


def assert_served_as_attachment(location: str) -> None:
    whole = httpx.get(location)
    assert whole.status_code == 200
    assert whole.content == PAYLOAD
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Content-Disposition"] == f'attachment; filename="{FILENAME}"'
    part = httpx.get(location, headers={"Range": "bytes=1000-"})
    assert part.status_code == 206
    assert part.content == PAYLOAD[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"


def test_it_redirects_an_api_download_to_a_presigned_url(
    api, stored, carol_token, s3_process, redirecting
):
    response = api("GET", api_path(stored), carol_token)

    location = assert_presigned_redirect(response, s3_process, redirecting)
    assert_served_as_attachment(location)


def test_it_redirects_a_range_request_too(api, stored, carol_token, s3_process, redirecting):
    response = api("GET", api_path(stored), carol_token, headers={"Range": "bytes=5-9"})

    assert_presigned_redirect(response, s3_process, redirecting)


def test_it_redirects_a_ui_download_to_a_presigned_url(
    carol_client, stored, s3_process, redirecting
):
    response = carol_client.get(ui_path(stored))

    location = assert_presigned_redirect(response, s3_process, redirecting)
    assert_served_as_attachment(location)


def test_it_streams_when_the_setting_is_off(api, stored, carol_token, settings):
    settings.ARTIFACT_DOWNLOAD_REDIRECT = False

    response = api("GET", api_path(stored), carol_token)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PAYLOAD


def test_it_answers_404_and_no_redirect_to_an_outsider(api, stored, mallory_token, mallory_client):
    from_api = api("GET", api_path(stored), mallory_token)
    from_ui = mallory_client.get(ui_path(stored))

    for response in (from_api, from_ui):
        assert response.status_code == 404
        assert "Location" not in response
        assert SHA256 not in response.content.decode()


def test_it_answers_404_and_no_redirect_without_a_token(api, stored):
    response = api("GET", api_path(stored))

    assert response.status_code in (401, 404)
    assert "Location" not in response


@pytest.fixture
def live_client(transactional_db, live_server, redirecting, alice_token) -> Iterator[Client]:
    with Client(live_server.url, token=alice_token, org="acme") as client:
        yield client


def test_it_has_the_client_follow_the_redirect_without_its_token(
    live_client, alice, model, s3_process, redirecting, tmp_path
):
    version = version_create(actor=alice, model=model)
    artifact_put(actor=alice, version=version, path=f"out/{FILENAME}", source=io.BytesIO(PAYLOAD))
    recorder = Recorder(s3_process)
    recorder.start()

    target = live_client.get_version(model.name, version.number).download_artifact(
        f"out/{FILENAME}", tmp_path
    )

    assert target.read_bytes() == PAYLOAD
    received = recorder.requests()
    gets = [r for r in received if urlsplit(r["url"]).path.endswith(blob_key(SHA256))]
    assert len(gets) == 1 and gets[0]["method"] == "GET"
    headers = {name.lower() for name in gets[0]["headers"]}
    assert "authorization" not in headers
    assert "Signature=" in gets[0]["url"] or "X-Amz-Signature=" in gets[0]["url"]
    # No request reached the object store with the Modelvault token, however it was sent.
    token = live_client._http.headers["Authorization"].removeprefix("Bearer ")
    assert not any(token in json.dumps(r["headers"]) + r["url"] for r in received)


def test_it_has_the_client_resume_from_the_object_store(
    live_client, alice, model, s3_process, redirecting, tmp_path
):
    version = version_create(actor=alice, model=model)
    artifact_put(actor=alice, version=version, path=f"out/{FILENAME}", source=io.BytesIO(PAYLOAD))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f".{FILENAME}.part").write_bytes(PAYLOAD[:4096])
    (tmp_path / "out" / f".{FILENAME}.part.sha256").write_text(SHA256)
    recorder = Recorder(s3_process)
    recorder.start()

    target = live_client.get_version(model.name, version.number).download_artifact(
        f"out/{FILENAME}", tmp_path
    )

    assert target.read_bytes() == PAYLOAD
    gets = [r for r in recorder.requests() if r["url"].split("?")[0].endswith(SHA256)]
    assert [r["headers"].get("Range") for r in gets] == ["bytes=4096-"]


def test_it_has_the_client_refuse_bytes_that_do_not_match(
    live_client, alice, model, s3_process, redirecting, tmp_path
):
    version = version_create(actor=alice, model=model)
    artifact_put(actor=alice, version=version, path=f"out/{FILENAME}", source=io.BytesIO(PAYLOAD))
    # The object changed behind the registry's back: the redirect's checksum still names the
    # original bytes.
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_process, region_name="us-east-1", **CREDENTIALS)
    s3.put_object(Bucket=redirecting, Key=f"modelvault/{blob_key(SHA256)}", Body=b"tampered")

    with pytest.raises(ChecksumMismatch):
        live_client.get_version(model.name, version.number).download_artifact(
            f"out/{FILENAME}", tmp_path
        )

    assert list((tmp_path / "out").iterdir()) == []
