"""GET .../versions/{number}/documentation?format=json|md|html (SPEC 3.10, 4.2): the same
Annex IV document as the web UI, to whoever may view the version."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.services import request_approve, request_create
from registry.services.comments import comment_add
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.api.conftest import error_code
from tests.compliance.test_documentation import SECTIONS, build_documented_version

pytestmark = pytest.mark.django_db

PATH = "/orgs/acme/models/{model}/versions/{number}/documentation"


@pytest.fixture
def documented(model, admin, alice, bob, carol):
    return build_documented_version(model, admin=admin, alice=alice, bob=bob, carol=carol)


def path(version) -> str:
    return PATH.format(model=version.model.name, number=version.number)


def test_it_answers_the_document_as_json_by_default(api, alice_token, documented):
    response = api("GET", path(documented), alice_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    doc = response.json()
    assert [s["id"] for s in doc["sections"]] == SECTIONS
    assert doc["digest"] == documented.digest and doc["number"] == 2
    assert len(doc["missing"]) == 8  # only what the registry cannot know
    assert (
        api("GET", path(documented), alice_token, format="json").json()["sections"]
        == (doc["sections"])
    )


def test_it_answers_markdown(api, alice_token, documented):
    response = api("GET", path(documented), alice_token, format="md")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert "fraud-v2-technical-documentation.md" in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith("# Technical documentation of acme/fraud v2\n")
    assert text.count("\n## ") == len(SECTIONS) and documented.digest in text


def test_it_answers_a_standalone_printable_page(api, alice_token, documented):
    response = api("GET", path(documented), alice_token, format="html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert body.startswith("<!doctype html>") and "@media print" in body
    assert "<h1>Technical documentation: fraud v2</h1>" in body
    assert re.findall(r'<section id="([a-z_]+)" class="doc-section"', body) == SECTIONS
    assert body.count('class="missing-label">Missing<') == 8
    assert "Drift on EU traffic" in body


def test_it_refuses_an_unknown_format(api, alice_token, documented):
    response = api("GET", path(documented), alice_token, format="pdf")
    assert response.status_code == 400 and error_code(response) == "invalid"


def test_it_lets_a_viewer_read_it(api, carol_token, documented):
    assert api("GET", path(documented), carol_token).status_code == 200


def test_it_answers_404_to_an_outsider(api, mallory_token, documented):
    response = api("GET", path(documented), mallory_token)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_it_answers_404_for_a_private_model_the_caller_may_not_view(
    api, acme, admin, carol_token, admin_token
):
    secret = model_create(actor=admin, org=acme, name="secret", visibility="private")
    version = version_create(actor=admin, model=secret)
    assert api("GET", path(version), carol_token).status_code == 404
    assert api("GET", path(version), admin_token).status_code == 200


def test_it_answers_404_for_a_missing_version(api, alice_token, model):
    response = api("GET", PATH.format(model="fraud", number=99), alice_token)
    assert response.status_code == 404


def test_it_asks_for_authentication(api, documented):
    assert api("GET", path(documented)).status_code == 401


def test_it_refuses_post(api, alice_token, documented):
    response = api("POST", path(documented), alice_token)
    assert response.status_code == 405


def _queries(api, token, version) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert api("GET", path(version), token).status_code == 200
    return len(captured)


def test_it_reads_in_a_constant_number_of_queries(api, alice_token, model, alice, bob, carol):
    version_create(actor=alice, model=model)
    version = version_create(actor=alice, model=model)
    comment_add(actor=carol, model=model, version=version, body="first")
    request = request_create(actor=alice, version=version, to_stage="development")
    request_approve(actor=bob, request=request)
    _queries(api, alice_token, version)  # the token's first use is recorded once
    few = _queries(api, alice_token, version)
    for n in range(20):
        comment_add(actor=carol, model=model, version=version, body=f"comment {n}")
        version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage="staging", comment="next")
    request_approve(actor=bob, request=request)
    assert _queries(api, alice_token, version) == few


def test_it_is_declared_in_the_openapi_document(api):
    from api.urls import api as ninja_api

    schema = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    documented = "/api/v1/orgs/{org}/models/{model}/versions/{number}/documentation"
    operation = schema["paths"][documented]["get"]
    content = operation["responses"][200]["content"]
    assert set(content) == {"application/json", "text/markdown", "text/html"}
    assert json.dumps(operation["parameters"]).count('"format"') == 1
