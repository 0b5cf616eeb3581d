"""Webhooks against a local receiver, in eager mode: signing, retries, auto-disable, the
SSRF guard at send time, replay, and who may manage them."""

import logging

import pytest

from approvals.services import request_approve, request_create
from notifications.models import Delivery, DeliveryStatus, Webhook
from notifications.sending import delivery_send
from notifications.services import (
    delivery_replay,
    get_webhook_for_user,
    webhook_create,
    webhook_delete,
)
from notifications.signing import verify
from notifications.ssrf import Target, literal_address
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Stage, Visibility
from registry.services.orgs import team_create, team_set_members
from registry.services.registered_models import model_create, model_grant
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_MAX_FAILURES = 3
    settings.WEBHOOK_RETRY_BASE = 1


@pytest.fixture
def hook(allow_private, receiver, model, alice):
    return webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )


def promote(committed, model, alice, bob):
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    committed(request_approve, actor=bob, request=request)
    return version


def test_it_posts_signed_json_of_the_chosen_events(committed, hook, receiver, model, alice, bob):
    version = promote(committed, model, alice, bob)
    assert len(receiver.hits) == 1
    hit = receiver.hits[0]
    headers = {k.lower(): v for k, v in hit.headers.items()}
    assert verify(
        hook.secret, headers["x-modelvault-timestamp"], hit.body, headers["x-modelvault-signature"]
    )
    assert headers["x-modelvault-event"] == "stage.applied"
    payload = hit.payload
    event = ActivityEvent.objects.get(verb="stage.applied")
    assert (payload["id"], payload["event"], payload["model"], payload["version"]) == (
        event.pk,
        "stage.applied",
        "fraud",
        version.number,
    )
    assert payload["changes"] == {"stage": ["unassigned", "staging"]}
    delivery = Delivery.objects.get(webhook=hook)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 1, 200)
    assert delivery.latency_ms is not None


def test_it_retries_a_failed_delivery_after_a_backoff(committed, hook, receiver, model, alice, bob):
    receiver.statuses = [500, 200]
    promote(committed, model, alice, bob)
    delivery = Delivery.objects.get(webhook=hook)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at is not None and delivery.last_error == "HTTP 500"
    assert delivery_send(delivery_id=delivery.pk).sent
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 2, 200)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0


def test_it_disables_a_webhook_after_consecutive_failures(
    committed, hook, receiver, model, alice, bob, caplog
):
    receiver.statuses = [500]
    promote(committed, model, alice, bob)
    delivery = Delivery.objects.get(webhook=hook)
    with caplog.at_level(logging.WARNING, logger="notifications.sending"):
        delivery_send(delivery_id=delivery.pk)
        delivery_send(delivery_id=delivery.pk)
    hook.refresh_from_db()
    delivery.refresh_from_db()
    assert not hook.active and hook.disabled_at is not None
    assert "disabled after 3 consecutive failures" in hook.disabled_reason
    assert delivery.status == DeliveryStatus.FAILED
    assert "disabled after 3 consecutive failures" in delivery.last_error
    assert "disabled after 3 consecutive failures" in caplog.text
    assert len(receiver.hits) == 3
    promote(committed, model, alice, bob)  # a disabled webhook receives nothing more
    assert len(receiver.hits) == 3


def test_it_refuses_a_private_target_at_send_time_too(
    committed, settings, hook, receiver, model, alice, bob
):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    promote(committed, model, alice, bob)
    assert receiver.hits == []
    delivery = Delivery.objects.get(webhook=hook)
    assert delivery.status == "pending" and "127.0.0.1 is a loopback address" in delivery.last_error


def test_it_follows_no_redirect(
    committed, settings, monkeypatch, hook, receiver, model, alice, bob
):
    # The receiver passes the guard as if it were public; it redirects to a private address.
    settings.WEBHOOK_ALLOW_PRIVATE = False
    public = Target(
        "http", "hooks.example.com", receiver.port, literal_address("127.0.0.1"), "/hook"
    )
    monkeypatch.setattr("notifications.sending.check_url", lambda url: public)
    receiver.statuses = [302]
    receiver.location = "http://127.0.0.1:9/latest/meta-data/"
    promote(committed, model, alice, bob)
    assert len(receiver.hits) == 1
    assert receiver.hits[0].headers["Host"] == f"hooks.example.com:{receiver.port}"
    delivery = Delivery.objects.get(webhook=hook)
    assert delivery.status == "pending" and delivery.response_code == 302
    assert "redirects are not followed" in delivery.last_error


def test_it_replays_a_delivery(committed, hook, receiver, model, alice, bob):
    promote(committed, model, alice, bob)
    delivery = Delivery.objects.get(webhook=hook)
    replayed = committed(delivery_replay, actor=alice, delivery=delivery)
    assert replayed.pk == delivery.pk
    assert len(receiver.hits) == 2
    assert receiver.hits[0].payload == receiver.hits[1].payload
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)


def test_it_refuses_registering_a_private_target(settings, model, alice):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(Invalid, match="refused"):
        webhook_create(
            actor=alice,
            org=model.org,
            model=model,
            url="http://169.254.169.254/",
            events=["stage.applied"],
        )
    assert not Webhook.objects.exists()


def may_manage(user, webhook: Webhook) -> bool:
    try:
        get_webhook_for_user(user, webhook.pk)
    except (NotFound, Forbidden):
        return False
    return True


def test_the_webhooks_a_list_shows_are_those_the_user_may_manage(
    allow_private, receiver, model, admin, alice, bob, carol, mallory
):
    """Webhook.objects.manageable_by (the API's list) and get_webhook_for_user (each webhook's
    own pages and replays, on both surfaces) give one answer: an org admin all, a writer by
    own grant or a team's those of the models written, a reader, a viewer and an outsider
    none."""
    org = model.org
    secret = model_create(actor=admin, org=org, name="secret", visibility=Visibility.PRIVATE)
    team = team_create(actor=admin, org=org, name="hook-keepers")
    team_set_members(actor=admin, team=team, users=[carol])
    model_grant(actor=admin, model=secret, permission="write", team=team)
    args = {"url": receiver.url, "events": ["version.created"]}
    hooks = {
        "fraud": webhook_create(actor=alice, org=org, model=model, **args),
        "secret": webhook_create(actor=admin, org=org, model=secret, **args),
        "org": webhook_create(actor=admin, org=org, **args),
    }
    listed = {}
    for user in (admin, alice, bob, carol, mallory):
        shown = set(Webhook.objects.manageable_by(user, org))
        assert shown == {hook for hook in hooks.values() if may_manage(user, hook)}
        listed[user.username] = sorted(name for name, hook in hooks.items() if hook in shown)
    assert listed == {
        "admin": ["fraud", "org", "secret"],
        "alice": ["fraud"],
        "bob": [],
        "carol": ["secret"],
        "mallory": [],
    }


def test_it_lets_only_writers_and_org_admins_manage_webhooks(
    allow_private, receiver, model, admin, alice, carol, mallory
):
    args = {"url": receiver.url, "events": ["version.created"]}
    with pytest.raises(Forbidden):
        webhook_create(actor=carol, org=model.org, model=model, **args)
    with pytest.raises(NotFound):
        webhook_create(actor=mallory, org=model.org, model=model, **args)
    with pytest.raises(Forbidden):
        webhook_create(actor=alice, org=model.org, **args)
    org_hook = webhook_create(actor=admin, org=model.org, **args)
    event = ActivityEvent.objects.get(verb="webhook.created")
    assert (event.actor, event.target_id, event.changes["url"]) == (
        admin,
        str(org_hook.pk),
        [None, receiver.url],
    )
    with pytest.raises(Invalid, match="unknown webhook events"):
        webhook_create(actor=admin, org=model.org, url=receiver.url, events=["nope"])
    webhook_delete(actor=admin, webhook=org_hook)
    assert ActivityEvent.objects.filter(verb="webhook.deleted").count() == 1


def test_a_webhook_is_hidden_from_who_may_not_see_it_and_refused_to_who_may_not_manage_it(
    allow_private,
    receiver,
    model,
    globex,
    admin,
    alice,
    carol,
    mallory,
    django_capture_on_commit_callbacks,
):
    """get_webhook_for_user, which the API and the web UI fetch a webhook with, and the
    replay of its deliveries: NotFound for an outsider, Forbidden for a member who sees the
    webhook's model (or org) but may not manage it, the webhook for its managers; within the
    org asked for only."""
    org = model.org
    args = {"url": receiver.url, "events": ["version.created"]}
    model_hook = webhook_create(actor=alice, org=org, model=model, **args)
    org_hook = webhook_create(actor=admin, org=org, **args)
    for hook, managers, onlookers in (
        (model_hook, (alice, admin), (carol,)),
        (org_hook, (admin,), (alice, carol)),
    ):
        for user in managers:
            found = get_webhook_for_user(user, hook.pk, org=org)
            assert (found, found.org, found.model) == (hook, org, hook.model)
        for user in onlookers:
            with pytest.raises(Forbidden):
                get_webhook_for_user(user, hook.pk)
        with pytest.raises(NotFound, match=f"webhook #{hook.pk} not found"):
            get_webhook_for_user(mallory, hook.pk)
        delivery = Delivery.objects.create(
            event=ActivityEvent.objects.filter(verb="webhook.created").first(),
            webhook=hook,
            channel="webhook",
        )
        with django_capture_on_commit_callbacks() as callbacks:
            for user in onlookers:
                with pytest.raises(Forbidden):
                    delivery_replay(actor=user, delivery=delivery)
            with pytest.raises(NotFound, match=f"delivery #{delivery.pk} not found"):
                delivery_replay(actor=mallory, delivery=delivery)
        assert callbacks == []
    email = Delivery.objects.create(event=delivery.event, user=carol, channel="email")
    with pytest.raises(NotFound, match=f"delivery #{email.pk} not found"):
        delivery_replay(actor=admin, delivery=email)  # a recipient's e-mail: no webhook's
    assert Delivery.objects.get(pk=email.pk).status == DeliveryStatus.PENDING
    with pytest.raises(NotFound):
        get_webhook_for_user(admin, model_hook.pk, org=globex)
    with pytest.raises(NotFound):
        get_webhook_for_user(admin, org_hook.pk + 1000)
