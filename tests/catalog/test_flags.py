"""Flags in the web UI (SPEC 3.10, 4.1): raise and resolve on the version page, and open-flag
badges on the version page, the catalog tiles and the versions dashboard."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.demo import ensure_shared_model
from registry.models import ActivityEvent, Flag, LockLevel
from registry.services.flags import flag_raise, flag_resolve
from registry.services.registered_models import model_create
from registry.services.versions import version_create, version_set_lock_level

pytestmark = pytest.mark.django_db

BADGE = re.compile(r'class="badge warn flag"[^>]*data-open-flags="(\d+)"')


def url(version, name="catalog:version", *extra) -> str:
    return reverse(name, args=["acme", version.model.name, version.number, *extra])


def raise_url(version) -> str:
    return url(version, "catalog:version-flag")


def resolve_url(flag) -> str:
    return url(flag.version, "catalog:version-flag-resolve", flag.pk)


def raise_one(actor, version, summary="AUC dropped") -> Flag:
    return flag_raise(actor=actor, version=version, severity="high", summary=summary)


def badges(body: str) -> list[int]:
    return [int(n) for n in BADGE.findall(body)]


def last_event(org) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


class TestRaise:
    form = {"severity": "critical", "summary": "scores all 0.5", "details": "since **02:00**"}

    def test_it_lets_a_viewer_flag_a_version(self, carol_client, version, carol):
        response = carol_client.post(raise_url(version), self.form)
        assert response.status_code == 302
        assert response["Location"] == url(version) + "#flags"
        flag = Flag.objects.get(version=version)
        assert (flag.severity, flag.summary, flag.raised_by) == (
            "critical",
            "scores all 0.5",
            carol,
        )
        assert (flag.details, flag.digest) == ("since **02:00**", version.digest)
        event = last_event(version.model.org)
        assert (event.verb, event.actor, event.target_id) == ("flag.raised", carol, str(flag.pk))
        page = carol_client.get(response["Location"]).content.decode()
        assert f"Flag #{flag.pk} raised" in page
        assert "scores all 0.5" in page and "<strong>02:00</strong>" in page

    def test_it_refuses_a_get(self, carol_client, version):
        assert carol_client.get(raise_url(version)).status_code == 405
        assert not Flag.objects.exists()

    def test_it_answers_404_to_an_outsider(self, mallory_client, version):
        assert mallory_client.post(raise_url(version), self.form).status_code == 404
        assert not Flag.objects.exists()

    def test_it_says_what_is_wrong_with_the_form(self, carol_client, version):
        response = carol_client.post(raise_url(version), {**self.form, "summary": ""})
        assert response.status_code == 302
        assert "Summary: This field is required" in carol_client.get(
            response["Location"]
        ).content.decode().replace("&#x27;", "'")
        response = carol_client.post(raise_url(version), {**self.form, "severity": "doom"})
        assert "Select a valid choice" in carol_client.get(response["Location"]).content.decode()
        assert not Flag.objects.exists()

    def test_it_flags_a_closed_version(self, carol_client, version, admin):
        version_set_lock_level(actor=admin, version=version, level=LockLevel.CLOSED)
        carol_client.post(raise_url(version), self.form)
        assert Flag.objects.filter(version=version).open().count() == 1


class TestResolve:
    def test_it_lets_a_writer_resolve(self, alice_client, version, carol, alice):
        flag = raise_one(carol, version)
        response = alice_client.post(resolve_url(flag), {"resolution": "rolled back to v0"})
        assert response.status_code == 302
        flag.refresh_from_db()
        assert (flag.is_open, flag.resolved_by, flag.resolution) == (
            False,
            alice,
            "rolled back to v0",
        )
        event = last_event(version.model.org)
        assert (event.verb, event.actor) == ("flag.resolved", alice)
        page = alice_client.get(response["Location"]).content.decode()
        assert f"Flag #{flag.pk} resolved" in page and "rolled back to v0" in page
        assert "1 resolved flag" in page and 'id="open-flags-badge"' not in page

    def test_it_refuses_a_get(self, alice_client, version, carol):
        flag = raise_one(carol, version)
        assert alice_client.get(resolve_url(flag)).status_code == 405
        assert Flag.objects.get(pk=flag.pk).is_open

    def test_it_answers_404_to_an_outsider(self, mallory_client, version, carol):
        flag = raise_one(carol, version)
        assert mallory_client.post(resolve_url(flag), {}).status_code == 404
        assert Flag.objects.get(pk=flag.pk).is_open

    def test_it_tells_a_viewer_they_may_not(self, carol_client, version, carol):
        flag = raise_one(carol, version)
        events = ActivityEvent.objects.count()
        response = carol_client.post(resolve_url(flag), {"resolution": "mine"})
        assert response.status_code == 302
        assert "write permission" in carol_client.get(response["Location"]).content.decode()
        assert Flag.objects.get(pk=flag.pk).is_open
        assert ActivityEvent.objects.count() == events

    def test_it_offers_the_resolve_form_to_writers_only(
        self, carol_client, alice_client, version, carol
    ):
        raise_one(carol, version)
        assert "resolve-flag" not in carol_client.get(url(version)).content.decode()
        assert "resolve-flag" in alice_client.get(url(version)).content.decode()

    def test_it_says_a_flag_is_already_resolved(self, alice_client, admin_client, version, carol):
        flag = raise_one(carol, version)
        alice_client.post(resolve_url(flag), {})
        response = admin_client.post(resolve_url(flag), {"resolution": "again"})
        assert "already resolved" in admin_client.get(response["Location"]).content.decode()
        assert Flag.objects.get(pk=flag.pk).resolution == ""

    def test_it_answers_404_for_a_flag_of_another_version(
        self, alice_client, model, version, alice, carol
    ):
        other = version_create(actor=alice, model=model)
        flag = raise_one(carol, other)
        wrong = url(version, "catalog:version-flag-resolve", flag.pk)
        assert alice_client.post(wrong, {}).status_code == 404
        assert Flag.objects.get(pk=flag.pk).is_open


# Badges


def test_it_shows_an_open_flags_badge_on_the_version_page(carol_client, version, carol, alice):
    assert 'id="open-flags-badge"' not in carol_client.get(url(version)).content.decode()
    raise_one(carol, version)
    second = raise_one(carol, version, summary="latency")
    body = carol_client.get(url(version)).content.decode()
    assert 'id="open-flags-badge" data-open-flags="2"' in body
    assert "2 open flags" in body
    flag_resolve(actor=alice, flag=second)
    assert "1 open flag<" in carol_client.get(url(version)).content.decode()


def test_it_shows_open_flags_on_the_catalog_tile(carol_client, cast, version, carol, alice):
    calm = ensure_shared_model(cast, "churn")
    version_create(actor=alice, model=calm)
    raise_one(carol, version)
    other = version_create(actor=alice, model=version.model)
    raise_one(carol, other)
    resolved = raise_one(carol, other)
    flag_resolve(actor=alice, flag=resolved)
    page = carol_client.get(reverse("catalog:catalog", args=["acme"]))
    counts = {m.name: m.open_flags for m in page.context["page"]}
    assert counts == {"churn": 0, "fraud": 2}
    assert badges(page.content.decode()) == [2]


def test_it_counts_no_flags_of_models_the_viewer_may_not_see(carol_client, model, admin):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    raise_one(admin, version_create(actor=admin, model=secret))
    page = carol_client.get(reverse("catalog:catalog", args=["acme"]))
    assert badges(page.content.decode()) == []
    assert "secret" not in page.content.decode()


def test_it_sorts_the_catalog_by_versions_with_flag_counts(alice_client, version, carol):
    raise_one(carol, version)
    page = alice_client.get(reverse("catalog:catalog", args=["acme"]) + "?sort=-versions")
    assert [(m.name, m.version_count, m.open_flags) for m in page.context["page"]] == [
        ("fraud", 1, 1)
    ]


def test_it_shows_open_flags_on_the_versions_dashboard(alice_client, model, version, alice, carol):
    calm = version_create(actor=alice, model=model)
    raise_one(carol, version)
    raise_one(carol, version, summary="again")
    page = alice_client.get(reverse("catalog:model", args=["acme", "fraud"]) + "?tab=versions")
    counts = {v.number: v.open_flags for v in page.context["page"]}
    assert counts == {version.number: 2, calm.number: 0}
    assert badges(page.content.decode()) == [2]


# Query counts: flags add no query per row to any list page, and one to the version page.


def count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        assert client.get(path).status_code == 200
    return len(context)


def flag_many(actor, versions, rows: int) -> None:
    for index in range(rows):
        raise_one(actor, versions[index % len(versions)], summary=f"flag {index}")


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_the_catalog_query_count_flat(alice_client, cast, alice, carol, rows):
    versions = [
        version_create(actor=alice, model=ensure_shared_model(cast, f"model-{i:02d}"))
        for i in range(rows)
    ]
    path = reverse("catalog:catalog", args=["acme"])
    before = count_queries(alice_client, path)
    flag_many(carol, versions, rows * 2)
    assert count_queries(alice_client, path) == before


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_the_versions_dashboard_query_count_flat(alice_client, model, alice, carol, rows):
    versions = [version_create(actor=alice, model=model) for _ in range(rows)]
    path = reverse("catalog:model", args=["acme", "fraud"]) + "?tab=versions"
    before = count_queries(alice_client, path)
    flag_many(carol, versions, rows * 2)
    assert count_queries(alice_client, path) == before


@pytest.mark.parametrize("rows", [5, 50])
def test_it_shows_any_number_of_flags_on_the_version_page_in_one_query(
    alice_client, version, alice, carol, rows
):
    before = count_queries(alice_client, url(version))
    flags = [raise_one(carol, version, summary=f"flag {i}") for i in range(rows)]
    for flag in flags[::2]:
        flag_resolve(actor=alice, flag=flag)
    assert count_queries(alice_client, url(version)) == before
    page = alice_client.get(url(version))
    assert len(page.context["open_flags"]) + len(page.context["resolved_flags"]) == rows
