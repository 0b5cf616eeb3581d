"""The model card's Activity tab exports the model's activity as JSON Lines or CSV, optionally
for a range of days, in the verifiable layout of `export_activity` (SPEC 3.7)."""

import csv
import io
import json
from datetime import UTC, timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from registry.export import FORMAT, verify_export
from registry.models import ActivityChain, ActivityEvent
from registry.services.comments import comment_add
from registry.services.registered_models import model_create
from registry.services.versions import version_create


def export_url(model) -> str:
    return reverse("catalog:activity-export", args=[model.org.slug, model.name])


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def lines(text: str) -> list[str]:
    return io.StringIO(text, newline="").readlines()


def test_it_offers_the_exports_on_the_activity_tab(carol_client, version):
    model = version.model
    response = carol_client.get(
        reverse("catalog:model", args=[model.org.slug, model.name]), {"tab": "activity"}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="{export_url(model)}?format=jsonl"' in page
    assert f'href="{export_url(model)}?format=csv"' in page
    assert "Export JSON Lines" in page and "Export CSV" in page
    assert 'name="since"' in page and 'name="until"' in page


def test_it_downloads_the_models_activity_as_json_lines(carol_client, version, alice):
    model = version.model
    other = model_create(actor=alice, org=model.org, name="other")
    version_create(actor=alice, model=other)

    response = carol_client.get(export_url(model), {"format": "jsonl"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="acme-fraud-activity.jsonl"'
    text = body(response)
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["format"] == FORMAT and records[0]["exported_by"] == "carol"
    assert records[0]["filters"]["model"] == "fraud"
    expected = list(ActivityEvent.objects.for_model(model).order_by("seq").values_list("seq"))
    assert [(e["seq"],) for e in records[1:-1]] == expected
    result = verify_export(lines(text))
    assert result.ok and not result.complete


def test_it_downloads_a_range_of_days_as_csv(carol_client, version, alice):
    model = version.model
    comment_add(actor=alice, model=model, body="=1+1")
    today = timezone.now().astimezone(UTC).date()

    text = body(
        carol_client.get(export_url(model), {"format": "csv", "since": today, "until": today})
    )
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) - 3 == ActivityEvent.objects.for_model(model).count()
    assert verify_export(lines(text)).ok

    tomorrow = today + timedelta(days=1)
    text = body(carol_client.get(export_url(model), {"format": "csv", "since": tomorrow}))
    result = verify_export(lines(text))
    assert result.ok and result.events == 0
    assert result.header["filters"]["since"] == f"{tomorrow}T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"format": "csv", "since": "2026-03-02", "until": "2026-03-01"}, "start date is after"),
        ({"format": "csv", "since": "yesterday"}, "Enter a valid date"),
        ({"format": "xml"}, "Select a valid choice"),
    ],
)
def test_it_answers_a_bad_range_on_the_activity_tab(carol_client, version, query, message):
    model = version.model
    response = carol_client.get(export_url(model), query)

    assert response.status_code == 302
    assert response["Location"] == (
        reverse("catalog:model", args=[model.org.slug, model.name]) + "?tab=activity"
    )
    assert any(message in str(m) for m in get_messages(response.wsgi_request))


def test_it_hides_the_export_from_an_outsider(mallory_client, version):
    response = mallory_client.get(export_url(version.model), {"format": "jsonl"})
    assert response.status_code == 404


def test_it_hides_a_private_models_export_from_a_member_who_may_not_view(
    carol_client, admin_client, model, admin
):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")

    assert carol_client.get(export_url(secret), {"format": "csv"}).status_code == 404
    assert admin_client.get(export_url(secret), {"format": "csv"}).status_code == 200


def test_it_refuses_a_wrong_method(carol_client, version):
    response = carol_client.post(export_url(version.model), {"format": "jsonl"})
    assert response.status_code == 405


def test_it_sends_anonymous_visitors_to_log_in(client, version):
    response = client.get(export_url(version.model), {"format": "jsonl"})
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


@pytest.mark.parametrize("rows", [5, 50])
def test_it_exports_in_a_fixed_number_of_queries(
    carol_client, model, alice, rows, django_assert_max_num_queries
):
    for i in range(rows):
        comment_add(actor=alice, model=model, body=f"comment {i}")
    # Session, user, model, permission checks, chain head, events: none grows with rows.
    with django_assert_max_num_queries(9):
        text = body(carol_client.get(export_url(model), {"format": "csv"}))
    assert verify_export(lines(text)).events == ActivityEvent.objects.for_model(model).count()
    assert ActivityEvent.objects.for_model(model).count() > rows


def test_it_counts_no_hidden_event_in_a_members_header(carol_client, admin_client, version, admin):
    """The org's chain head would count the events of models carol may not view: the header
    of her file ends at its own last event. An org admin gets the org's head."""
    model = version.model
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    version_create(actor=admin, model=secret)
    records = [
        json.loads(line)
        for line in body(carol_client.get(export_url(model), {"format": "jsonl"})).splitlines()
    ]
    assert records[0]["head"] == {"seq": records[-2]["seq"], "hash": records[-2]["hash"]}
    chain = ActivityChain.objects.get(org=model.org)
    assert chain.seq > records[-2]["seq"]
    text = body(admin_client.get(export_url(model), {"format": "jsonl"}))
    assert json.loads(text.splitlines()[0])["head"] == {"seq": chain.seq, "hash": chain.head}
