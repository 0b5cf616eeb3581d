"""Webhooks over the API: managing them (org admins for org webhooks, writers for model
webhooks), the secret shown once, the SSRF guard, the delivery log and replay."""

import socket

import pytest

from notifications.models import Delivery, DeliveryStatus, Webhook
from notifications.services import event_dispatch, webhook_create
from registry.demo import ensure_shared_model
from registry.models import ActivityEvent
from registry.services.comments import comment_add
from registry.services.orgs import team_create, team_set_members
from registry.services.registered_models import model_grant
from tests.api.conftest import error_code, last_event
from tests.notifications.conftest import receiver  # noqa: F401 (a fixture)

HOOKS = "/orgs/acme/webhooks"
URL = "https://hooks.example.com/modelvault"


@pytest.fixture(autouse=True)
def public_dns(settings, monkeypatch):
    """hooks.example.com resolves to a public address (the SSRF guard passes it); every
    other name resolves as usual (no DNS here: literal addresses only)."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def hook(model, alice) -> Webhook:
    """A webhook of acme/fraud, made by alice (write on the model)."""
    return webhook_create(
        actor=alice, org=model.org, model=model, url=URL, events=["comment.added"]
    )


@pytest.fixture
def org_hook(acme, admin) -> Webhook:
    return webhook_create(actor=admin, org=acme, url=URL, events=["model.created"])


def deliveries(hook: Webhook, model, alice, rows: int) -> list[Delivery]:
    """`rows` comments, each dispatched by the real service: one pending delivery each."""
    for i in range(rows):
        comment_add(actor=alice, model=model, body=f"comment {i}")
        event = ActivityEvent.objects.filter(verb="comment.added").order_by("-seq").first()
        event_dispatch(event_id=event.pk)
    return list(Delivery.objects.filter(webhook=hook).order_by("-pk"))


# Creating


def test_it_creates_a_model_webhook_and_shows_its_secret_once(api, model, alice_token):
    response = api(
        "POST",
        HOOKS,
        alice_token,
        {"url": URL, "events": ["stage.applied", "version.created"], "model": "fraud"},
    )
    assert response.status_code == 201
    body = response.json()
    webhook = Webhook.objects.get()
    assert body["secret"] == webhook.secret and len(webhook.secret) == 64
    assert (body["id"], body["org"], body["model"], body["created_by"]) == (
        webhook.pk,
        "acme",
        "fraud",
        "alice",
    )
    assert (webhook.model, webhook.url, webhook.events, webhook.created_by.username) == (
        model,
        URL,
        ["stage.applied", "version.created"],
        "alice",
    )
    event = last_event(model.org)
    assert (event.verb, event.target_id, event.actor_name) == (
        "webhook.created",
        str(webhook.pk),
        "alice",
    )
    assert event.changes["url"] == [None, URL]
    # Never again: not in a read, a list or an update.
    path = f"{HOOKS}/{webhook.pk}"
    assert "secret" not in api("GET", path, alice_token).json()
    assert all("secret" not in item for item in api("GET", HOOKS, alice_token).json()["items"])
    assert "secret" not in api("PATCH", path, alice_token, {"active": False}).json()
    assert webhook.secret not in api("GET", path, alice_token).content.decode()


def test_it_tells_a_webhook_made_over_the_api_nothing_from_before(
    settings, api, model, alice, alice_token
):
    """An event still waiting for its dispatch (broker down) when a webhook is registered
    reaches only the webhooks that existed when it happened."""
    comment_add(actor=alice, model=model, body="before the hook")  # left for the sweep
    before = last_event(model.org)
    body = {"url": URL, "events": ["comment.added"], "model": "fraud"}
    hook = api("POST", HOOKS, alice_token, body).json()["id"]
    comment_add(actor=alice, model=model, body="after the hook")
    after = last_event(model.org)
    for event in (before, after):
        event_dispatch(event_id=event.pk)
    assert list(Delivery.objects.filter(webhook_id=hook).values_list("event", flat=True)) == [
        after.pk
    ]


def test_it_creates_an_org_webhook_for_org_admins_only(api, acme, admin_token, alice_token):
    response = api("POST", HOOKS, alice_token, {"url": URL, "events": ["model.created"]})
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert not Webhook.objects.exists()
    response = api("POST", HOOKS, admin_token, {"url": URL, "events": ["model.created"]})
    assert response.status_code == 201
    assert response.json()["model"] is None
    assert Webhook.objects.get().model is None
    assert last_event(acme).verb == "webhook.created"


def test_it_answers_the_quartet_for_webhook_creation(
    api, model, alice_token, carol_token, mallory_token
):
    data = {"url": URL, "events": ["stage.applied"], "model": "fraud"}
    before = ActivityEvent.objects.count()
    assert api("PUT", HOOKS, alice_token, data).status_code == 405
    response = api("POST", HOOKS, mallory_token, data)
    assert response.status_code == 404 and error_code(response) == "not_found"
    response = api("POST", HOOKS, carol_token, data)
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert api("POST", HOOKS, carol_token, {**data, "model": None}).status_code == 403
    assert not Webhook.objects.exists()
    assert ActivityEvent.objects.count() == before


def test_it_hides_a_private_models_webhook_creation_from_non_viewers(
    api, cast, carol_token, bob_token
):
    ensure_shared_model(cast, "secret-sauce", visibility="private")
    data = {"url": URL, "events": ["stage.applied"], "model": "secret-sauce"}
    assert api("POST", HOOKS, carol_token, data).status_code == 404
    assert api("POST", HOOKS, bob_token, data).status_code == 403  # views, may not write
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://[::ffff:192.168.0.1]/", "192.168.0.1 is a private address"),
    ],
)
def test_it_refuses_a_private_target_naming_the_reason(api, model, alice_token, url, reason):
    response = api(
        "POST", HOOKS, alice_token, {"url": url, "events": ["stage.applied"], "model": "fraud"}
    )
    assert response.status_code == 400 and error_code(response) == "invalid"
    assert reason in response.json()["error"]["message"]
    assert not Webhook.objects.exists()


def test_it_allows_a_private_target_when_the_setting_says_so(settings, api, model, alice_token):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    response = api(
        "POST",
        HOOKS,
        alice_token,
        {"url": "http://10.1.2.3/hook", "events": ["stage.applied"], "model": "fraud"},
    )
    assert response.status_code == 201
    assert Webhook.objects.get().url == "http://10.1.2.3/hook"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"url": URL, "events": ["stage.landed"]}, 400, "unknown webhook events: stage.landed"),
        ({"url": URL, "events": []}, 400, "choose at least one event"),
        ({"url": "ftp://hooks.example.com/", "events": ["stage.applied"]}, 400, "http(s) URL"),
        ({"url": "not a url", "events": ["stage.applied"]}, 400, "http(s) URL"),
        ({"url": URL + "/" + "x" * 500, "events": ["stage.applied"]}, 400, "at most 500"),
        ({"url": URL}, 400, "events"),
        ({"url": URL, "events": ["stage.applied"], "model": "nope"}, 404, "model nope"),
    ],
)
def test_it_refuses_a_bad_webhook(api, model, alice_token, body, status, message):
    response = api("POST", HOOKS, alice_token, {"model": "fraud", **body})
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "field",
    [
        "id",
        "org",
        "created_by",
        "created_at",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "secret",
    ],
)
def test_it_refuses_mass_assignment(api, hook, alice_token, field):
    data = {"url": URL, "events": ["stage.applied"], "model": "fraud", field: "x"}
    response = api("POST", HOOKS, alice_token, data)
    assert response.status_code == 400
    assert f"{field} cannot be set here" in response.json()["error"]["message"]
    response = api(
        "PATCH", f"{HOOKS}/{hook.pk}", alice_token, {"events": ["model.created"], field: 1}
    )
    assert response.status_code == 400
    assert Webhook.objects.count() == 1
    stored = Webhook.objects.get()
    assert (stored.events, stored.secret, stored.consecutive_failures) == (
        ["comment.added"],
        hook.secret,
        0,
    )


# Reading and listing


def test_it_reads_a_webhook_for_its_managers_only(
    api, hook, org_hook, alice_token, carol_token, mallory_token, admin_token
):
    path = f"{HOOKS}/{hook.pk}"
    body = api("GET", path, alice_token).json()
    assert (body["url"], body["events"], body["active"], body["consecutive_failures"]) == (
        URL,
        ["comment.added"],
        True,
        0,
    )
    assert api("GET", path, admin_token).status_code == 200
    assert api("GET", path, carol_token).status_code == 403  # views the model, may not manage
    assert api("GET", path, mallory_token).status_code == 404
    assert api("GET", f"/orgs/globex/webhooks/{hook.pk}", mallory_token).status_code == 404
    org_path = f"{HOOKS}/{org_hook.pk}"
    assert api("GET", org_path, admin_token).status_code == 200
    assert api("GET", org_path, alice_token).status_code == 403
    assert api("GET", org_path, mallory_token).status_code == 404
    assert api("GET", f"{HOOKS}/999999", admin_token).status_code == 404


def test_it_hides_a_private_models_webhook(api, cast, alice, carol_token, bob_token):
    private = ensure_shared_model(cast, "secret-sauce", visibility="private")
    hidden = webhook_create(
        actor=alice, org=private.org, model=private, url=URL, events=["stage.applied"]
    )
    assert api("GET", f"{HOOKS}/{hidden.pk}", carol_token).status_code == 404
    assert api("GET", f"{HOOKS}/{hidden.pk}", bob_token).status_code == 403
    assert api("GET", HOOKS, carol_token).json()["items"] == []


def test_it_lists_the_webhooks_the_caller_manages(
    api, hook, org_hook, admin_token, alice_token, carol_token, mallory_token
):
    def ids(token, **query):
        return [item["id"] for item in api("GET", HOOKS, token, **query).json()["items"]]

    assert ids(admin_token) == [hook.pk, org_hook.pk]
    assert ids(alice_token) == [hook.pk]  # the model she writes to; not the org's
    assert ids(carol_token) == []
    assert ids(admin_token, model="fraud") == [hook.pk]
    assert api("GET", HOOKS, mallory_token).status_code == 404
    assert api("GET", HOOKS, carol_token, model="nope").status_code == 404


def test_it_lists_webhooks_a_team_may_write_to(api, hook, acme, admin, model, carol, carol_token):
    team = team_create(actor=admin, org=acme, name="hook-keepers")
    team_set_members(actor=admin, team=team, users=[carol])
    model_grant(actor=admin, model=model, permission="write", team=team)
    assert [item["id"] for item in api("GET", HOOKS, carol_token).json()["items"]] == [hook.pk]
    assert api("GET", f"{HOOKS}/{hook.pk}", carol_token).status_code == 200


@pytest.mark.parametrize("rows", [5, 30])
def test_it_lists_webhooks_in_a_fixed_number_of_queries(
    api, model, acme, admin, alice, alice_token, rows, django_assert_max_num_queries
):
    for i in range(rows):
        webhook_create(
            actor=alice, org=acme, model=model, url=f"{URL}/{i}", events=["stage.applied"]
        )
    with django_assert_max_num_queries(6):
        response = api("GET", HOOKS, alice_token, limit=200)
    assert len(response.json()["items"]) == rows


def test_it_pages_webhooks_with_a_cursor(api, model, acme, alice, alice_token):
    made = [
        webhook_create(actor=alice, org=acme, model=model, url=f"{URL}/{i}", events=["alias.set"])
        for i in range(3)
    ]
    first = api("GET", HOOKS, alice_token, limit=2).json()
    second = api("GET", HOOKS, alice_token, limit=2, cursor=first["next"]).json()
    assert [i["id"] for i in first["items"] + second["items"]] == [w.pk for w in made]
    assert second["next"] is None


# Updating and deleting


def test_it_updates_a_webhook(api, hook, model, alice_token):
    response = api(
        "PATCH",
        f"{HOOKS}/{hook.pk}",
        alice_token,
        {"events": ["version.created", "stage.applied"], "active": False},
    )
    assert response.status_code == 200
    assert (response.json()["events"], response.json()["active"]) == (
        ["stage.applied", "version.created"],
        False,
    )
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.events, stored.active, stored.url) == (
        ["stage.applied", "version.created"],
        False,
        URL,
    )
    event = last_event(model.org)
    assert (event.verb, event.target_id) == ("webhook.updated", str(hook.pk))
    assert event.changes == {
        "events": [["comment.added"], ["stage.applied", "version.created"]],
        "active": [True, False],
    }


def test_it_reenables_an_auto_disabled_webhook(api, hook, alice_token):
    # As the sender leaves it after too many failures (notifications.sending).
    Webhook.objects.filter(pk=hook.pk).update(
        active=False, consecutive_failures=10, disabled_reason="disabled after 10 failures"
    )
    body = api("GET", f"{HOOKS}/{hook.pk}", alice_token).json()
    assert (body["active"], body["consecutive_failures"]) == (False, 10)
    assert body["disabled_reason"] == "disabled after 10 failures"
    body = api("PATCH", f"{HOOKS}/{hook.pk}", alice_token, {"active": True}).json()
    assert (body["active"], body["consecutive_failures"], body["disabled_reason"]) == (
        True,
        0,
        "",
    )


def test_it_answers_the_quartet_for_webhook_updates(
    api, hook, alice_token, carol_token, mallory_token
):
    path = f"{HOOKS}/{hook.pk}"
    before = ActivityEvent.objects.count()
    assert api("PUT", path, alice_token, {"active": False}).status_code == 405
    assert api("PATCH", path, mallory_token, {"active": False}).status_code == 404
    assert api("PATCH", path, carol_token, {"active": False}).status_code == 403
    assert Webhook.objects.get(pk=hook.pk).active
    assert ActivityEvent.objects.count() == before


def test_it_refuses_a_private_target_or_a_null_on_update(api, hook, alice_token):
    path = f"{HOOKS}/{hook.pk}"
    response = api("PATCH", path, alice_token, {"url": "http://192.168.1.10/hook"})
    assert response.status_code == 400
    assert "192.168.1.10 is a private address" in response.json()["error"]["message"]
    response = api("PATCH", path, alice_token, {"url": None})
    assert response.status_code == 400 and "url cannot be null" in response.text
    assert Webhook.objects.get(pk=hook.pk).url == URL


def test_it_deletes_a_webhook(api, hook, model, alice_token):
    assert api("DELETE", f"{HOOKS}/{hook.pk}", alice_token).status_code == 204
    assert not Webhook.objects.exists()
    event = last_event(model.org)
    assert (event.verb, event.target_id, event.changes) == (
        "webhook.deleted",
        str(hook.pk),
        {"url": [URL, None]},
    )


def test_it_answers_the_quartet_for_webhook_deletion(
    api, hook, org_hook, alice_token, carol_token, mallory_token
):
    assert api("POST", f"{HOOKS}/{hook.pk}", alice_token, {}).status_code == 405
    assert api("DELETE", f"{HOOKS}/{hook.pk}", mallory_token).status_code == 404
    assert api("DELETE", f"{HOOKS}/{hook.pk}", carol_token).status_code == 403
    assert api("DELETE", f"{HOOKS}/{org_hook.pk}", alice_token).status_code == 403
    assert Webhook.objects.count() == 2


# Deliveries and replay


def test_it_lists_deliveries_newest_first_with_their_outcome(api, hook, model, alice, alice_token):
    made = deliveries(hook, model, alice, 3)
    Delivery.objects.filter(pk=made[1].pk).update(
        status=DeliveryStatus.FAILED, attempts=8, response_code=500, last_error="HTTP 500"
    )
    body = api("GET", f"{HOOKS}/{hook.pk}/deliveries", alice_token, limit=2).json()
    assert [d["id"] for d in body["items"]] == [made[0].pk, made[1].pk]
    failed = body["items"][1]
    assert (failed["status"], failed["attempts"], failed["response_code"]) == ("failed", 8, 500)
    assert (failed["last_error"], failed["webhook"]) == ("HTTP 500", hook.pk)
    event = made[1].event
    assert failed["event"]["seq"] == event.seq and failed["event"]["verb"] == "comment.added"
    rest = api("GET", f"{HOOKS}/{hook.pk}/deliveries", alice_token, cursor=body["next"]).json()
    assert [d["id"] for d in rest["items"]] == [made[2].pk] and rest["next"] is None


def test_it_shows_deliveries_to_managers_only(
    api, hook, model, alice, alice_token, carol_token, mallory_token
):
    deliveries(hook, model, alice, 1)
    path = f"{HOOKS}/{hook.pk}/deliveries"
    assert api("POST", path, alice_token, {}).status_code == 405
    assert api("GET", path, carol_token).status_code == 403
    assert api("GET", path, mallory_token).status_code == 404


@pytest.mark.parametrize("rows", [5, 30])
def test_it_lists_deliveries_in_a_fixed_number_of_queries(
    api, hook, model, alice, carol, alice_token, rows, django_assert_max_num_queries
):
    deliveries(hook, model, alice, rows)
    with django_assert_max_num_queries(10):
        response = api("GET", f"{HOOKS}/{hook.pk}/deliveries", alice_token, limit=200)
    assert len(response.json()["items"]) == rows


@pytest.fixture
def sent_hook(settings, receiver, model, alice):  # noqa: F811 (the receiver fixture)
    settings.WEBHOOK_ALLOW_PRIVATE = True
    return webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["comment.added"]
    )


def test_it_replays_a_delivery(
    api,
    sent_hook,
    receiver,  # noqa: F811
    model,
    alice,
    alice_token,
    django_capture_on_commit_callbacks,
):
    delivery = deliveries(sent_hook, model, alice, 1)[0]
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, attempts=8, last_error="attempts exhausted"
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api("POST", f"/deliveries/{delivery.pk}/replay", alice_token)
    assert response.status_code == 202
    assert (response.json()["id"], response.json()["status"]) == (delivery.pk, "pending")
    assert len(callbacks) == 1  # enqueued after commit
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 9, 200)
    assert len(receiver.hits) == 1 and receiver.hits[0].payload["delivery"] == delivery.pk


def test_it_answers_the_quartet_for_replay(
    api,
    hook,
    model,
    alice,
    alice_token,
    carol_token,
    mallory_token,
    django_capture_on_commit_callbacks,
):
    delivery = deliveries(hook, model, alice, 1)[0]
    path = f"/deliveries/{delivery.pk}/replay"
    with django_capture_on_commit_callbacks() as callbacks:
        assert api("GET", path, alice_token).status_code == 405
        assert api("POST", path, mallory_token).status_code == 404
        assert api("POST", path, carol_token).status_code == 403
    assert callbacks == []
    assert Delivery.objects.get(pk=delivery.pk).attempts == 0


def test_it_refuses_to_replay_for_a_disabled_webhook_or_an_email(
    api, hook, model, alice, carol, alice_token, django_capture_on_commit_callbacks
):
    delivery = deliveries(hook, model, alice, 1)[0]
    Webhook.objects.filter(pk=hook.pk).update(active=False)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api("POST", f"/deliveries/{delivery.pk}/replay", alice_token)
    assert response.status_code == 400 and "enable it before replaying" in response.text
    assert callbacks == []
    email = Delivery.objects.create(event=delivery.event, user=carol, channel="email")
    assert api("POST", f"/deliveries/{email.pk}/replay", alice_token).status_code == 404
    assert api("POST", "/deliveries/999999/replay", alice_token).status_code == 404
