import json

import pytest

from registry.models import ActivityEvent
from registry.services.comments import comment_add
from registry.services.registered_models import model_create
from registry.services.versions import version_create


def test_it_lists_the_orgs_events(api, version, carol_token):
    body = api("GET", "/orgs/acme/activity", carol_token).json()
    verbs = [e["verb"] for e in body["items"]]
    assert "model.created" in verbs and "version.created" in verbs
    seqs = [e["seq"] for e in body["items"]]
    assert seqs == sorted(seqs)


def test_it_filters_by_model_and_version(api, version, alice, carol_token):
    other = model_create(actor=alice, org=version.model.org, name="other")
    version_create(actor=alice, model=other)
    comment_add(actor=alice, model=version.model, version=version, body="hi")
    by_model = api("GET", "/orgs/acme/activity", carol_token, model="other").json()["items"]
    assert {e["model_id"] for e in by_model} == {other.pk}
    by_version = api("GET", "/orgs/acme/activity", carol_token, model="fraud", version=1).json()
    assert [e["verb"] for e in by_version["items"]] == ["version.created", "comment.added"]


def test_it_lists_events_after_a_seq(api, version, carol_token):
    # The last event carol may see: the org's own events (her token's, for one) are admins'.
    events = ActivityEvent.objects.filter(org=version.model.org, model__isnull=False)
    last = events.order_by("-seq").first()
    body = api("GET", "/orgs/acme/activity", carol_token, after=str(last.seq - 1)).json()
    assert [e["seq"] for e in body["items"]] == [last.seq]


def test_it_exports_json_lines(api, version, carol_token):
    response = api(
        "GET", "/orgs/acme/activity", carol_token, headers={"Accept": "application/x-ndjson"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    lines = b"".join(response.streaming_content).decode().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[-1]["verb"] == "version.created"


def test_it_hides_private_models_events(api, model, admin, carol_token):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    response = api(
        "GET", "/orgs/acme/activity", carol_token, headers={"Accept": "application/x-ndjson"}
    )
    events = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert secret.pk not in {e["model_id"] for e in events}
    assert api("GET", "/orgs/acme/activity", carol_token, model="secret").status_code == 404


def test_it_never_exports_across_orgs(api, version, mallory_token):
    assert api("GET", "/orgs/acme/activity", mallory_token).status_code == 404
    response = api(
        "GET", "/orgs/globex/activity", mallory_token, headers={"Accept": "application/x-ndjson"}
    )
    events = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert all(e["model_id"] != version.model_id for e in events)


def test_it_answers_a_wrong_method_on_activity(api, version, carol_token):
    assert api("POST", "/orgs/acme/activity", carol_token, {}).status_code == 405


@pytest.mark.parametrize("rows", [5, 50])
def test_it_lists_events_in_a_fixed_number_of_queries(
    api, model, alice, carol_token, rows, django_assert_max_num_queries
):
    for i in range(rows):
        comment_add(actor=alice, model=model, body=f"comment {i}")
    with django_assert_max_num_queries(8):
        response = api("GET", "/orgs/acme/activity", carol_token, limit=200)
    assert len(response.json()["items"]) >= rows
