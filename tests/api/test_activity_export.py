"""GET /orgs/{org}/activity as an export (SPEC 3.7): ?format=jsonl|csv or Accept: text/csv
streams a file that `verify_activity --file` checks offline; ?since=/?until= cut a time range.
A member's export holds only the events of models they may view."""

import csv
import io
import json
from datetime import timedelta

import pytest

from api.urls import api as ninja_api
from registry.audit import GENESIS
from registry.export import FORMAT, verify_export
from registry.models import ActivityChain, ActivityEvent
from registry.services.artifacts import artifact_put
from registry.services.comments import comment_add
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.api.conftest import error_code

INJECTION = '=HYPERLINK("evil.example","click")'


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


def jsonl_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def csv_events(text: str) -> list[dict]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [dict(zip(rows[1], row, strict=True)) for row in rows[2:-1]]


@pytest.fixture
def secret(model, admin):
    """A private model of acme that carol may not view, with some activity."""
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    version_create(actor=admin, model=secret)
    comment_add(actor=admin, model=secret, body="hush")
    return secret


def test_it_downloads_a_json_lines_export_that_verifies(api, version, admin_token):
    response = api("GET", "/orgs/acme/activity", admin_token, format="jsonl")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="acme-activity.jsonl"'
    text = body(response)
    records = jsonl_records(text)
    chain = ActivityChain.objects.get(org=version.model.org)
    assert records[0]["format"] == FORMAT and records[0]["exported_by"] == "admin"
    assert records[0]["head"] == {"seq": chain.seq, "hash": chain.head}
    assert records[-1] == {"end": FORMAT, "events": chain.seq}
    result = verify_export(lines(text))
    assert result.ok and result.complete and result.events == chain.seq


@pytest.mark.parametrize("how", [{"format": "csv"}, {"headers": {"Accept": "text/csv"}}])
def test_it_downloads_a_csv_export_with_formulas_neutralised(api, version, alice, admin_token, how):
    artifact_put(actor=alice, version=version, path=INJECTION, source=io.BytesIO(b"x"))

    response = api("GET", "/orgs/acme/activity", admin_token, **how)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="acme-activity.csv"'
    text = body(response)
    added = [e for e in csv_events(text) if e["verb"] == "artifact.added"]
    assert "'" + INJECTION in [e["target_repr"] for e in added]
    result = verify_export(lines(text))
    assert result.ok and result.complete, result.problem


def test_it_exports_one_model_or_one_version(api, version, alice, carol_token):
    other = model_create(actor=alice, org=version.model.org, name="other")
    version_create(actor=alice, model=other)
    comment_add(actor=alice, model=version.model, version=version, body="on v1")

    by_model = body(api("GET", "/orgs/acme/activity", carol_token, model="other", format="csv"))
    assert {e["model_id"] for e in csv_events(by_model)} == {str(other.pk)}
    assert verify_export(lines(by_model)).ok

    response = api(
        "GET", "/orgs/acme/activity", carol_token, model="fraud", version=1, format="jsonl"
    )
    assert response["Content-Disposition"] == 'attachment; filename="acme-fraud-v1-activity.jsonl"'
    records = jsonl_records(body(response))
    assert [e["verb"] for e in records[1:-1]] == ["version.created", "comment.added"]
    assert records[0]["filters"]["version_id"] == str(version.pk)


def test_it_exports_and_lists_a_time_range(api, version, alice, carol_token):
    comment_add(actor=alice, model=version.model, body="later")
    events = list(ActivityEvent.objects.filter(model_id=version.model_id).order_by("seq"))
    since = events[-2].created_at
    until = events[-1].created_at + timedelta(microseconds=1)
    window = {"since": since.isoformat(), "until": until.isoformat()}

    text = body(api("GET", "/orgs/acme/activity", carol_token, format="jsonl", **window))
    records = jsonl_records(text)
    assert [e["seq"] for e in records[1:-1]] == [events[-2].seq, events[-1].seq]
    result = verify_export(lines(text))
    assert result.ok and not result.complete

    page = api("GET", "/orgs/acme/activity", carol_token, since=events[-1].created_at.isoformat())
    assert [e["seq"] for e in page.json()["items"]] == [events[-1].seq]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "since must be an ISO 8601 time"),
        ({"until": "2026-03-01T00:00:00"}, "give until with its time zone"),
        ({"since": "2026-03-02T00:00Z", "until": "2026-03-01T00:00Z"}, "since must be before"),
        ({"format": "csv", "after": "3"}, "an export takes since and until"),
        ({"format": "xml"}, ""),
    ],
)
def test_it_refuses_a_bad_range_or_format(api, version, carol_token, query, message):
    response = api("GET", "/orgs/acme/activity", carol_token, **query)

    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert message in response.json()["error"]["message"]


def test_it_never_exports_across_orgs(api, version, mallory_token):
    for query in ({"format": "csv"}, {"format": "jsonl", "model": "fraud"}):
        response = api("GET", "/orgs/acme/activity", mallory_token, **query)
        assert response.status_code == 404
        assert error_code(response) == "not_found"
    own = body(api("GET", "/orgs/globex/activity", mallory_token, format="jsonl"))
    records = jsonl_records(own)
    assert records[0]["org"] == "globex"
    assert all(e["model_id"] != version.model_id for e in records[1:-1])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_it_leaves_out_models_a_member_may_not_view(api, version, secret, alice, carol_token, fmt):
    comment_add(actor=alice, model=version.model, body="later on fraud")
    text = body(api("GET", "/orgs/acme/activity", carol_token, format=fmt))

    events = jsonl_records(text)[1:-1] if fmt == "jsonl" else csv_events(text)
    model_ids = {str(e["model_id"]) for e in events}
    assert str(version.model_id) in model_ids and str(secret.pk) not in model_ids
    assert "secret" not in text and "hush" not in text
    result = verify_export(lines(text))
    assert result.ok and result.header["filters"]["scope"] == "viewable" and result.gaps >= 1
    response = api("GET", "/orgs/acme/activity", carol_token, model="secret", format=fmt)
    assert response.status_code == 404


@pytest.mark.parametrize("query", [{}, {"model": "fraud"}, {"model": "fraud", "version": 1}])
def test_it_counts_no_hidden_event_in_a_members_header(api, version, carol_token, query, admin):
    """The org's chain head would count the events of models carol may not view: hers is the
    last event of her file, however many hidden events come after it."""
    secret = model_create(actor=admin, org=version.model.org, name="secret", visibility="private")
    version_create(actor=admin, model=secret)
    text = body(api("GET", "/orgs/acme/activity", carol_token, format="jsonl", **query))

    records = jsonl_records(text)
    last = records[-2]
    assert records[0]["head"] == {"seq": last["seq"], "hash": last["hash"]}
    assert ActivityChain.objects.get(org=version.model.org).seq > last["seq"]
    assert verify_export(lines(text)).ok


def test_it_gives_a_member_with_nothing_to_export_the_genesis_head(api, version, carol_token):
    future = (version.created_at + timedelta(days=1)).isoformat()
    records = jsonl_records(
        body(api("GET", "/orgs/acme/activity", carol_token, format="jsonl", since=future))
    )
    assert records[0]["head"] == {"seq": 0, "hash": GENESIS} and len(records) == 2


def test_it_gives_org_admins_the_whole_chain(api, version, secret, admin_token):
    text = body(api("GET", "/orgs/acme/activity", admin_token, format="csv"))

    assert str(secret.pk) in {e["model_id"] for e in csv_events(text)}
    result = verify_export(lines(text))
    assert result.ok and result.complete and result.gaps == 0


def test_it_keeps_json_lines_by_accept_as_it_was(api, version, carol_token):
    response = api(
        "GET", "/orgs/acme/activity", carol_token, headers={"Accept": "application/x-ndjson"}
    )

    assert response["Content-Type"] == "application/x-ndjson"
    assert "Content-Disposition" not in response
    first = json.loads(body(response).splitlines()[0])
    assert "format" not in first and {"seq", "verb", "hash"} <= set(first)


def test_it_declares_the_export_content_types():
    schema = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    operation = schema["paths"]["/api/v1/orgs/{org}/activity"]["get"]
    content = operation["responses"][200]["content"]
    assert {"application/json", "application/x-ndjson", "text/csv"} <= set(content)
    parameters = {p["name"] for p in operation["parameters"]}
    assert {"since", "until", "format"} <= parameters


@pytest.mark.parametrize("rows", [5, 50])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_it_exports_in_a_fixed_number_of_queries(
    api, model, alice, carol_token, rows, fmt, django_assert_max_num_queries
):
    for i in range(rows):
        comment_add(actor=alice, model=model, body=f"comment {i}")
    with django_assert_max_num_queries(8):
        text = body(api("GET", "/orgs/acme/activity", carol_token, format=fmt))
    assert verify_export(lines(text)).events >= rows
