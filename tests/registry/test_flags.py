"""Flags (SPEC 3.10): raised by viewers, resolved by writers, at every lock level; each one
an activity event, watchers told by e-mail; `flagged` in the query language."""

import pytest
from django.core import mail

from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Flag, LockLevel, ModelVersion
from registry.query import search_versions
from registry.services.flags import flag_raise, flag_resolve
from registry.services.registered_models import model_create, model_watch
from registry.services.versions import version_create, version_set_lock_level
from tests.api.conftest import Api, _token

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(model, alice):
    return version_create(actor=alice, model=model, metrics={"auc": 0.9})


@pytest.fixture
def api() -> Api:
    return Api()


def last_event(org) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


def raise_one(actor, version, **overrides) -> Flag:
    fields = {"severity": "high", "summary": "AUC dropped to 0.61 in production"}
    return flag_raise(actor=actor, version=version, **{**fields, **overrides})


def test_it_lets_a_viewer_raise_a_flag_with_an_event(version, carol):
    flag = raise_one(carol, version, details="since the 12th", digest=version.digest)
    stored = Flag.objects.get(pk=flag.pk)
    assert (stored.model_id, stored.version_id, stored.raised_by) == (
        version.model_id,
        version.pk,
        carol,
    )
    assert (stored.severity, stored.details, stored.digest) == (
        "high",
        "since the 12th",
        version.digest,
    )
    assert stored.is_open
    event = last_event(version.model.org)
    assert (event.verb, event.actor, event.target_type, event.target_id) == (
        "flag.raised",
        carol,
        "flag",
        str(flag.pk),
    )
    assert event.version_id == version.pk and event.model_id == version.model_id
    assert event.data["severity"] == "high"
    assert event.data["summary"] == "AUC dropped to 0.61 in production"
    assert event.data["number"] == version.number


def test_it_records_the_digest_of_the_version_when_none_is_cited(version, carol):
    assert raise_one(carol, version).digest == version.digest


def test_it_refuses_a_digest_that_is_not_the_versions(version, carol):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(Invalid) as refused:
        raise_one(carol, version, digest=wrong)
    assert wrong in refused.value.message and version.digest in refused.value.message
    assert not Flag.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"severity": "apocalyptic"}, "severity must be one of low, medium, high, critical"),
        ({"summary": ""}, "a flag needs a summary"),
        ({"summary": "   "}, "a flag needs a summary"),
        ({"summary": "x" * 201}, "summary is longer than 200"),
        ({"summary": "a\x00b"}, "summary must not contain NUL"),
        ({"details": "\udb12"}, "details must be valid Unicode"),
        ({"summary": 3}, "summary must be a string"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(version, carol, overrides, message):
    events = ActivityEvent.objects.count()
    with pytest.raises(Invalid) as refused:
        raise_one(carol, version, **overrides)
    assert message in refused.value.message
    assert not Flag.objects.exists()
    assert ActivityEvent.objects.count() == events


def test_it_hides_the_version_from_an_outsider(version, mallory, carol):
    with pytest.raises(NotFound):
        raise_one(mallory, version)
    flag = raise_one(carol, version)
    with pytest.raises(NotFound):
        flag_resolve(actor=mallory, flag=flag)
    assert Flag.objects.get(pk=flag.pk).is_open


def test_it_lets_only_writers_resolve(version, carol, alice):
    flag = raise_one(carol, version)
    with pytest.raises(Forbidden):
        flag_resolve(actor=carol, flag=flag, resolution="not me")
    assert Flag.objects.get(pk=flag.pk).is_open
    resolved = flag_resolve(actor=alice, flag=flag, resolution="retrained on fresh data")
    stored = Flag.objects.get(pk=flag.pk)
    assert (stored.resolved_by, stored.resolution) == (alice, "retrained on fresh data")
    assert stored.resolved_at is not None and not resolved.is_open
    event = last_event(version.model.org)
    assert (event.verb, event.actor, event.target_id) == ("flag.resolved", alice, str(flag.pk))
    assert event.changes == {"status": ["open", "resolved"]}
    assert event.data["comment"] == "retrained on fresh data"


def test_it_resolves_a_flag_once(version, carol, alice, admin):
    flag = raise_one(carol, version)
    flag_resolve(actor=alice, flag=flag)
    events = ActivityEvent.objects.count()
    with pytest.raises(Conflict):
        flag_resolve(actor=admin, flag=flag, resolution="again")  # a stale instance, too
    assert Flag.objects.get(pk=flag.pk).resolved_by == alice
    assert ActivityEvent.objects.count() == events


@pytest.mark.parametrize("level", [LockLevel.REDACT, LockLevel.CLOSED])
def test_it_allows_flags_at_every_lock_level(version, carol, alice, admin, level):
    version_set_lock_level(actor=admin, version=version, level=level)
    version.refresh_from_db()
    flag = raise_one(carol, version, digest=version.digest)
    flag_resolve(actor=alice, flag=flag, resolution="explained")
    stored = ModelVersion.objects.get(pk=version.pk)
    assert (stored.lock_level, stored.digest) == (level, version.digest)
    assert not Flag.objects.get(pk=flag.pk).is_open


def test_it_emails_watchers_when_a_flag_is_raised(
    version, carol, alice, django_capture_on_commit_callbacks
):
    model_watch(actor=alice, model=version.model)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        raise_one(carol, version)
    assert [m.to for m in mail.outbox] == [[alice.email]]
    message = mail.outbox[0]
    assert message.subject == f"[Modelvault] fraud v{version.number} was flagged"
    assert "AUC dropped to 0.61 in production" in message.body
    assert f"/orgs/acme/models/fraud/versions/{version.number}/" in message.body
    assert message.extra_headers["X-Modelvault-Event"] == "flag.raised"


def test_it_tells_no_watcher_before_commit_nor_the_flagger(
    version, carol, django_capture_on_commit_callbacks
):
    model_watch(actor=carol, model=version.model)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        raise_one(carol, version)
    assert mail.outbox == [] and callbacks
    for callback in callbacks:
        callback()
    assert mail.outbox == []  # the actor is never told of their own action


def _found(text: str, user=None) -> set[str]:
    versions = ModelVersion.objects.all()
    if user is not None:
        versions = ModelVersion.objects.visible_to(user)
    return {f"{v.model.name}/{v.number}" for v in search_versions(versions, text)}


def test_it_finds_versions_with_open_flags(model, version, alice, carol):
    second = version_create(actor=alice, model=model)
    third = version_create(actor=alice, model=model)
    raise_one(carol, version)
    resolved = raise_one(carol, third)
    flag_resolve(actor=alice, flag=resolved)
    raise_one(carol, version, severity="low", summary="and another")  # no duplicate rows
    assert _found("flagged == true") == {"fraud/1"}
    assert sorted(v.pk for v in search_versions(ModelVersion.objects.all(), "flagged == true")) == [
        version.pk
    ]
    assert _found("flagged == false") == {f"fraud/{second.number}", f"fraud/{third.number}"}
    assert _found("flagged != true") == _found("flagged == false")
    assert _found("flagged == true and metrics.auc >= 0.9") == {"fraud/1"}


def test_it_finds_no_flagged_version_in_models_the_user_may_not_view(model, admin, alice, carol):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    hidden = version_create(actor=admin, model=secret)
    raise_one(admin, hidden)
    assert _found("flagged == true", admin) == {"secret/1"}
    assert _found("flagged == true", carol) == set()
    assert Flag.objects.visible_to(carol).count() == 0
    assert Flag.objects.visible_to(admin).count() == 1


def test_it_searches_flagged_versions_through_the_api(api, model, version, alice, carol):
    other = version_create(actor=alice, model=model)
    raise_one(carol, other)
    token = _token(carol)
    flagged = api("GET", "/orgs/acme/versions", token, q="flagged == true").json()
    assert [(v["model"], v["number"]) for v in flagged["items"]] == [("fraud", other.number)]
    calm = api("GET", "/orgs/acme/versions", token, q="flagged == false").json()
    assert [(v["model"], v["number"]) for v in calm["items"]] == [("fraud", version.number)]


def test_it_hides_flagged_versions_of_private_models_from_api_search(api, model, admin, carol):
    secret = model_create(actor=admin, org=model.org, name="secret", visibility="private")
    raise_one(admin, version_create(actor=admin, model=secret))
    body = api("GET", "/orgs/acme/versions", _token(carol), q="flagged == true").json()
    assert body["items"] == []
    seen = api("GET", "/orgs/acme/versions", _token(admin), q="flagged == true").json()
    assert [v["model"] for v in seen["items"]] == ["secret"]


# The admin console: read-only, scoped to the admin's orgs.


def admin_url(name: str, *args) -> str:
    from django.urls import reverse

    return reverse(f"admin:registry_{name}", args=args)


def test_it_shows_flags_read_only_in_the_admin(admin_client, version, carol):
    flag = raise_one(carol, version, details="since the 12th")
    listed = admin_client.get(admin_url("flag_changelist"))
    assert listed.status_code == 200
    assert [f.pk for f in listed.context["cl"].result_list] == [flag.pk]
    assert listed.context["action_form"] is None  # no "delete selected"
    opened = admin_client.get(admin_url("flag_changelist") + "?status=open")
    assert [f.pk for f in opened.context["cl"].result_list] == [flag.pk]
    change = admin_url("flag_change", flag.pk)
    page = admin_client.get(change)
    assert page.status_code == 200 and b"since the 12th" in page.content
    assert b'name="_save"' not in page.content
    assert admin_client.post(change, {"summary": "edited"}).status_code == 403
    assert admin_client.post(admin_url("flag_delete", flag.pk), {"post": "yes"}).status_code == 403
    assert admin_client.get(admin_url("flag_add")).status_code == 403
    stored = Flag.objects.get(pk=flag.pk)
    assert (stored.summary, stored.is_open) == ("AUC dropped to 0.61 in production", True)


def test_it_hides_other_orgs_flags_in_the_admin(mallory, mallory_client, version, carol):
    mallory.is_staff = True
    mallory.save(update_fields=["is_staff"])
    flag = raise_one(carol, version)
    listed = mallory_client.get(admin_url("flag_changelist"))
    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == []
    assert mallory_client.get(admin_url("flag_change", flag.pk)).status_code == 404
    assert mallory_client.get(admin_url("flag_history", flag.pk)).status_code == 404


def test_it_lists_flags_in_the_admin_in_few_queries(admin_client, version, carol):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(admin_url("flag_changelist")).status_code == 200
        return len(context)

    raise_one(carol, version)
    few = queries()
    for index in range(30):
        raise_one(carol, version, summary=f"flag {index}")
    assert queries() == few


# Races (PostgreSQL: real parallel connections).


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_resolves_a_flag_once_when_writers_race(model, alice, admin, carol):
    from django.contrib.auth import get_user_model

    from tests.registry.test_concurrency_postgres import Race, assert_chain_intact

    flag = raise_one(carol, version_create(actor=alice, model=model))
    users = [alice, admin] * 4

    def resolve(i: int):
        racer = get_user_model().objects.get(pk=users[i].pk)
        stale = Flag.objects.select_related("model__org", "version").get(pk=flag.pk)
        try:
            flag_resolve(actor=racer, flag=stale, resolution=f"racer {i}")
        except Conflict:
            return "conflict"
        return "resolved"

    results = Race(len(users), resolve).run()
    assert sorted(results) == ["conflict"] * (len(users) - 1) + ["resolved"]
    events = assert_chain_intact(model.org)
    assert [e["verb"] for e in events].count("flag.resolved") == 1
    stored = Flag.objects.get(pk=flag.pk)
    assert stored.resolution == next(
        e["data"]["comment"] for e in events if e["verb"] == "flag.resolved"
    )
