import hashlib
import io
import random

import pytest
from django.test import Client

from registry.models import Artifact, Blob
from registry.services.versions import version_set_lock_level
from tests.api.conftest import error_code, last_event

V1 = "/orgs/acme/models/fraud/versions/1"
ARTIFACTS = f"{V1}/artifacts"


def _stored_files(settings) -> list:
    root = settings.ARTIFACT_ROOT
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _staged_files(settings) -> list:
    root = settings.ARTIFACT_TMP_DIR
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_it_lists_artifacts(api, version, carol_token):
    body = api("GET", ARTIFACTS, carol_token).json()
    assert body["items"] == [
        {"path": "model.bin", "size": 7, "sha256": hashlib.sha256(b"weights").hexdigest()}
    ]


def test_it_hides_artifacts_from_an_outsider(api, version, mallory_token):
    assert api("GET", ARTIFACTS, mallory_token).status_code == 404


def test_it_uploads_an_artifact_under_a_nested_path(api, version, alice_token):
    data = b"x" * 100_000
    digest = hashlib.sha256(data).hexdigest()
    response = api(
        "PUT",
        f"{ARTIFACTS}/weights/layer.0.bin",
        alice_token,
        data=data,
        headers={"X-Checksum-Sha256": digest},
    )
    assert response.status_code == 201
    assert response.json() == {"path": "weights/layer.0.bin", "size": 100_000, "sha256": digest}
    assert Artifact.objects.get(version=version, path="weights/layer.0.bin").blob_id == digest
    event = last_event(version.model.org)
    assert event.verb == "artifact.added"
    assert event.changes["sha256"] == [None, digest]


def test_it_refuses_an_upload_to_a_viewer(api, version, carol_token):
    assert api("PUT", f"{ARTIFACTS}/a.bin", carol_token, data=b"x").status_code == 403


def test_it_refuses_an_upload_to_an_outsider(api, version, mallory_token):
    assert api("PUT", f"{ARTIFACTS}/a.bin", mallory_token, data=b"x").status_code == 404


def test_it_refuses_an_upload_to_a_closed_version(api, version, alice, admin_token):
    version_set_lock_level(actor=alice, version=version, level="closed")
    response = api("PUT", f"{ARTIFACTS}/a.bin", admin_token, data=b"x")
    assert response.status_code == 423
    assert not Artifact.objects.filter(path="a.bin").exists()


def test_it_refuses_a_checksum_mismatch_and_stores_nothing(api, version, alice_token, settings):
    before = _stored_files(settings)
    response = api(
        "PUT",
        f"{ARTIFACTS}/a.bin",
        alice_token,
        data=b"actual bytes",
        headers={"X-Checksum-Sha256": hashlib.sha256(b"other").hexdigest()},
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert not Artifact.objects.filter(path="a.bin").exists()
    assert not Blob.objects.filter(sha256=hashlib.sha256(b"actual bytes").hexdigest()).exists()
    assert _stored_files(settings) == before
    assert _staged_files(settings) == []


@pytest.mark.parametrize("path", ["../escape.bin", "a\\b.bin", "a/./../b"])
def test_it_refuses_a_bad_path(api, version, alice_token, path):
    response = api("PUT", f"{ARTIFACTS}/{path}", alice_token, data=b"x")
    assert response.status_code in (400, 404)
    assert not Artifact.objects.filter(version=version).exclude(path="model.bin").exists()


def test_it_refuses_a_declared_size_over_the_limit_before_reading(version, alice_token, settings):
    settings.ARTIFACT_MAX_SIZE = 10

    class Unreadable(io.RawIOBase):
        def read(self, *args):
            raise AssertionError("the body was read")

    response = Client().put(
        "/api/v1" + f"{ARTIFACTS}/big.bin",
        headers={"Authorization": f"Bearer {alice_token}"},
        CONTENT_LENGTH="11",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    assert error_code(response) == "too_large"
    assert not Artifact.objects.filter(path="big.bin").exists()


def test_it_refuses_a_body_longer_than_the_limit(api, version, alice_token, settings):
    settings.ARTIFACT_MAX_SIZE = 10
    response = api("PUT", f"{ARTIFACTS}/big.bin", alice_token, data=b"x" * 11)
    assert response.status_code == 413
    assert not Artifact.objects.filter(path="big.bin").exists()


def test_it_leaves_nothing_after_an_aborted_upload(version, alice_token, settings):
    class Disconnecting(io.RawIOBase):
        sent = 0

        def readable(self):
            return True

        def read(self, size=-1):
            if self.sent > 70_000:
                raise OSError("client disconnected")
            self.sent += 65_536
            return b"y" * 65_536

        def readinto(self, buffer):
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    before = _stored_files(settings)
    response = Client(raise_request_exception=False).put(
        "/api/v1" + f"{ARTIFACTS}/partial.bin",
        headers={"Authorization": f"Bearer {alice_token}"},
        CONTENT_LENGTH=str(1_000_000),
        **{"wsgi.input": Disconnecting()},
    )
    assert response.status_code >= 400
    assert not Artifact.objects.filter(path="partial.bin").exists()
    assert _stored_files(settings) == before
    assert _staged_files(settings) == []


class EndsEarly(io.RawIOBase):
    """A request body whose connection closes after `sent` bytes: reads then give b"", as a
    WSGI server gives them, not an error."""

    def __init__(self, sent: int):
        self.left = sent

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left, 65_536)
        buffer[:n] = b"z" * n
        self.left -= n
        return n


def test_it_refuses_a_body_cut_off_before_its_declared_size(version, alice_token, settings):
    before = _stored_files(settings)
    events = version.model.org.events.count()
    response = Client().put(
        "/api/v1" + f"{ARTIFACTS}/cut.bin",
        headers={"Authorization": f"Bearer {alice_token}"},
        CONTENT_LENGTH=str(4 * 1024 * 1024),
        **{"wsgi.input": EndsEarly(2 * 1024 * 1024)},
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    body = response.json()["error"]
    assert "2097152 bytes where 4194304 were declared" in body["message"]
    assert body["details"] == {"declared": 4194304, "received": 2097152}
    assert not Artifact.objects.filter(path="cut.bin").exists()
    assert not Blob.objects.filter(size=2 * 1024 * 1024).exists()
    assert version.model.org.events.count() == events
    assert _stored_files(settings) == before
    assert _staged_files(settings) == []


@pytest.mark.django_db(transaction=True)
def test_a_live_server_refuses_25_uploads_whose_client_stops_sending(
    live_server, version, alice_token, settings
):
    """Over a real socket, 25 times: the client declares 4 MiB, sends 2 MiB and closes its
    side. Not one leaves a row, a blob or a staging file."""
    import socket
    from urllib.parse import urlsplit

    before = _stored_files(settings)
    blobs = Blob.objects.count()
    url = urlsplit(live_server.url)
    for attempt in range(25):
        with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
            conn.sendall(
                (
                    f"PUT /api/v1{ARTIFACTS}/cut-{attempt}.bin HTTP/1.1\r\n"
                    f"Host: {url.netloc}\r\nAuthorization: Bearer {alice_token}\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {4 * 1024 * 1024}\r\nConnection: close\r\n\r\n"
                ).encode()
            )
            conn.sendall(bytes([attempt]) * (2 * 1024 * 1024))
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := conn.recv(65_536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"were declared" in answer
    assert not Artifact.objects.filter(path__startswith="cut-").exists()
    assert Blob.objects.count() == blobs
    assert _stored_files(settings) == before
    assert _staged_files(settings) == []


def test_it_downloads_an_artifact_as_an_attachment(api, version, carol_token):
    response = api("GET", f"{ARTIFACTS}/model.bin", carol_token)
    assert response.status_code == 200
    sha256 = hashlib.sha256(b"weights").hexdigest()
    assert b"".join(response.streaming_content) == b"weights"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["ETag"] == f'"{sha256}"'
    assert response["X-Checksum-Sha256"] == sha256
    assert response["Content-Length"] == "7"


@pytest.mark.parametrize("direct_io", [True, False], ids=["direct", "plain"])
def test_it_sends_a_large_artifact_with_the_same_answer_either_way(
    api, version, alice_token, carol_token, settings, monkeypatch, direct_io
):
    """A blob goes out as a file (FileResponse: sendfile under gunicorn), or with
    ARTIFACT_DIRECT_IO, from DIRECT_READ_MIN on, streams from direct reads: the client sees
    the same headers and bytes either way."""
    from django.http import FileResponse

    from registry import directio

    settings.ARTIFACT_DIRECT_IO = direct_io
    data = random.Random(9).randbytes(5 * 1024 * 1024 + 7)
    put = api("PUT", f"{ARTIFACTS}/big/weights.bin", alice_token, data=data)
    assert put.status_code == 201
    answers, kinds = {}, {}
    for threshold in (10**12, 1024):  # under DIRECT_READ_MIN, then over it
        monkeypatch.setattr(directio, "DIRECT_READ_MIN", threshold)
        response = api("GET", f"{ARTIFACTS}/big/weights.bin", carol_token)
        assert response.status_code == 200
        kinds[threshold] = isinstance(response, FileResponse)
        assert b"".join(response.streaming_content) == data
        headers = ("Content-Type", "Content-Disposition", "Content-Length", "ETag")
        answers[threshold] = {h: response[h] for h in (*headers, "X-Checksum-Sha256")}
    assert kinds == {10**12: True, 1024: not direct_io}
    assert answers[1024] == answers[10**12]
    assert answers[1024]["Content-Disposition"] == 'attachment; filename="weights.bin"'
    assert answers[1024]["X-Checksum-Sha256"] == hashlib.sha256(data).hexdigest()


def test_it_stops_reading_a_download_the_client_left_midway(
    api, version, alice_token, carol_token, settings, monkeypatch, blob_open
):
    """The server closes the response of a client that went away: the thread reading the
    blob ahead stops and the file is closed."""
    import threading

    from registry import directio

    settings.ARTIFACT_DIRECT_IO = True
    monkeypatch.setattr(directio, "DIRECT_READ_MIN", 1024)
    data = random.Random(10).randbytes(12 * 1024 * 1024)
    assert api("PUT", f"{ARTIFACTS}/big/w.bin", alice_token, data=data).status_code == 201
    sha256 = hashlib.sha256(data).hexdigest()
    response = api("GET", f"{ARTIFACTS}/big/w.bin", carol_token)
    assert next(iter(response.streaming_content)) == data[: 1024 * 1024]
    assert blob_open(sha256)
    response.close()
    assert [t for t in threading.enumerate() if t.name == "download-read"] == []
    assert not blob_open(sha256)


def test_it_hides_a_download_from_an_outsider(api, version, mallory_token):
    assert api("GET", f"{ARTIFACTS}/model.bin", mallory_token).status_code == 404


def test_it_answers_404_for_a_missing_artifact(api, version, carol_token):
    assert api("GET", f"{ARTIFACTS}/missing.bin", carol_token).status_code == 404


def test_it_removes_an_artifact(api, version, alice_token):
    response = api("DELETE", f"{ARTIFACTS}/model.bin", alice_token)
    assert response.status_code == 204
    assert not Artifact.objects.filter(version=version).exists()
    assert last_event(version.model.org).verb == "artifact.removed"


def test_it_refuses_a_removal_to_a_viewer(api, version, carol_token):
    assert api("DELETE", f"{ARTIFACTS}/model.bin", carol_token).status_code == 403
    assert Artifact.objects.filter(version=version).exists()


def test_it_refuses_a_removal_to_an_outsider(api, version, mallory_token):
    assert api("DELETE", f"{ARTIFACTS}/model.bin", mallory_token).status_code == 404


def test_it_refuses_a_removal_from_a_closed_version(api, version, alice, admin_token):
    version_set_lock_level(actor=alice, version=version, level="closed")
    assert api("DELETE", f"{ARTIFACTS}/model.bin", admin_token).status_code == 423
    assert Artifact.objects.filter(version=version).exists()


def test_it_answers_a_wrong_method_on_artifacts(api, version, alice_token):
    assert api("POST", f"{ARTIFACTS}/model.bin", alice_token, data=b"x").status_code == 405
    assert api("PUT", ARTIFACTS, alice_token, data=b"x").status_code == 405
