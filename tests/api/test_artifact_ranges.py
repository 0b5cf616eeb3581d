"""Downloads honour one Range (RFC 9110), so a client can resume: through the API, the UI
(tests/catalog/test_version_page.py) and on S3 (tests/registry/test_s3_storage.py)."""

import hashlib

import pytest

from tests.api.conftest import error_code

pytestmark = pytest.mark.django_db

PATH = "/orgs/acme/models/fraud/versions/1/artifacts/model.bin"
CONTENT = b"weights"  # the `version` fixture's model.bin
ETAG = f'"{hashlib.sha256(CONTENT).hexdigest()}"'


def get(api, token, **headers):
    return api("GET", PATH, token, headers=headers)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize(
    ("asked", "part", "first", "last"),
    [
        ("bytes=2-4", b"igh", 2, 4),
        ("bytes=3-", b"ghts", 3, 6),
        ("bytes=-2", b"ts", 5, 6),
        ("bytes=5-100", b"ts", 5, 6),
        ("bytes=-100", CONTENT, 0, 6),
    ],
)
def test_it_answers_a_range_with_that_part(api, version, carol_token, asked, part, first, last):
    response = get(api, carol_token, Range=asked)
    assert response.status_code == 206
    assert body(response) == part
    assert response["Content-Range"] == f"bytes {first}-{last}/7"
    assert response["Content-Length"] == str(len(part))
    # The whole file's checksum, so that the resumed file is checked as one.
    assert response["ETag"] == ETAG and response["X-Checksum-Sha256"] == ETAG.strip('"')
    assert response["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("asked", ["bytes=7-", "bytes=100-200", "bytes=-0"])
def test_it_refuses_a_range_past_the_end_with_its_json(api, version, carol_token, asked):
    response = get(api, carol_token, Range=asked)
    assert response.status_code == 416
    assert error_code(response) == "range_not_satisfiable"
    assert response.json()["error"]["details"] == {"size": 7}
    assert response["Content-Range"] == "bytes */7"


@pytest.mark.parametrize("asked", ["bytes=0-1,3-4", "items=0-1", "bytes=4-2", "bytes=-"])
def test_it_sends_the_whole_file_for_a_range_it_does_not_serve(api, version, carol_token, asked):
    response = get(api, carol_token, Range=asked)
    assert response.status_code == 200 and body(response) == CONTENT


def test_it_sends_the_whole_file_when_if_range_names_another(api, version, carol_token):
    stale = get(api, carol_token, Range="bytes=2-", **{"If-Range": '"0000"'})
    assert stale.status_code == 200 and body(stale) == CONTENT
    fresh = get(api, carol_token, Range="bytes=2-", **{"If-Range": ETAG})
    assert fresh.status_code == 206 and body(fresh) == b"ights"


def test_it_hides_a_range_of_what_the_caller_may_not_view(api, version, mallory_token):
    response = get(api, mallory_token, Range="bytes=0-1")
    assert response.status_code == 404 and error_code(response) == "not_found"
