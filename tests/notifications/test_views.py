"""The preferences page, the watch button and webhook management pages."""

import pytest
from django.template import RequestContext, Template
from django.test import RequestFactory
from django.urls import reverse

from notifications.models import Delivery, NotificationPreference, Webhook
from notifications.services import preferences_of, webhook_create
from registry.models import ActivityEvent, Watch
from tests.conftest import messages_of

pytestmark = pytest.mark.django_db

WRITE_REFUSED = ["you do not have write permission on model fraud"]


@pytest.fixture
def allow_private(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


def watch_url(model, verb="watch"):
    return reverse(f"notifications:{verb}", args=[model.org.slug, model.name])


def webhooks_url(model):
    return reverse("notifications:model-webhooks", args=[model.org.slug, model.name])


def test_it_saves_preferences_per_kind(carol_client, carol):
    url = reverse("notifications:preferences")
    page = carol_client.get(url)
    assert page.status_code == 200
    assert b"New versions" in page.content
    response = carol_client.post(url, {"stage_applied": "on", "stage_requested": "on"})
    assert response.status_code == 302
    prefs = preferences_of(carol)
    assert prefs["stage_applied"] and prefs["stage_requested"]
    assert not prefs["version_created"] and not prefs["lock_changed"]
    assert NotificationPreference.objects.filter(user=carol).count() == 6


def test_it_watches_and_unwatches_a_model(carol_client, carol, model):
    response = carol_client.post(watch_url(model), {"next": "/models/"})
    assert response.status_code == 302 and response["Location"] == "/models/"
    assert Watch.objects.filter(model=model, user=carol).exists()
    carol_client.post(watch_url(model, "unwatch"))
    assert not Watch.objects.filter(model=model, user=carol).exists()


def test_it_refuses_a_watch_by_get_or_by_an_outsider(carol_client, mallory_client, model):
    assert carol_client.get(watch_url(model)).status_code == 405
    assert mallory_client.post(watch_url(model)).status_code == 404
    assert not Watch.objects.exists()


def test_it_never_redirects_a_watch_off_site(carol_client, model):
    response = carol_client.post(watch_url(model), {"next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_it_creates_a_model_webhook_from_the_settings_tab(
    allow_private, alice_client, receiver, model
):
    response = alice_client.post(
        webhooks_url(model), {"url": receiver.url, "events": ["stage.applied", "version.created"]}
    )
    webhook = Webhook.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("notifications:webhook", args=[webhook.pk])
    assert (webhook.model, webhook.events) == (model, ["stage.applied", "version.created"])
    assert ActivityEvent.objects.filter(verb="webhook.created").count() == 1


def test_it_answers_the_quartet_for_webhook_creation(
    allow_private, alice_client, carol_client, mallory_client, receiver, model
):
    data = {"url": receiver.url, "events": ["stage.applied"]}
    assert alice_client.get(webhooks_url(model)).status_code == 405
    assert mallory_client.post(webhooks_url(model), data).status_code == 404
    refused = carol_client.post(webhooks_url(model), data)  # a viewer: told on the page
    assert (refused.status_code, messages_of(refused)) == (302, WRITE_REFUSED)
    assert not Webhook.objects.exists()


def test_it_shows_the_refusal_of_a_private_target(settings, alice_client, model):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = alice_client.post(
        webhooks_url(model),
        {"url": "http://169.254.169.254/", "events": ["stage.applied"]},
        follow=True,
    )
    assert b"169.254.169.254 is a link-local address" in response.content
    assert not Webhook.objects.exists()


def test_it_shows_the_delivery_log_and_replays(
    allow_private,
    alice_client,
    carol_client,
    receiver,
    model,
    alice,
    django_capture_on_commit_callbacks,
):
    webhook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    event = ActivityEvent.objects.get(verb="webhook.created")
    delivery = Delivery.objects.create(event=event, webhook=webhook, channel="webhook")
    page = alice_client.get(reverse("notifications:webhook", args=[webhook.pk]))
    assert page.status_code == 200
    assert webhook.secret.encode() in page.content
    assert carol_client.get(reverse("notifications:webhook", args=[webhook.pk])).status_code == 403
    replay = reverse("notifications:delivery-replay", args=[delivery.pk])
    refused = carol_client.post(replay)
    assert (refused.status_code, messages_of(refused)) == (302, WRITE_REFUSED)
    assert Delivery.objects.get(pk=delivery.pk).attempts == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post(replay).status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "sent" and len(receiver.hits) == 1


def test_it_hides_a_webhook_from_an_outsider_and_refuses_a_viewer_changing_nothing(
    allow_private, alice_client, carol_client, mallory_client, receiver, model, alice, carol
):
    """The webhook's page, its deletion and a replay of its deliveries: 404 for an outsider;
    for a viewer of the model, 403 for the page and a message for what they post (the web
    UI's one mapping, catalog.errors.domain_errors)."""
    webhook = webhook_create(
        actor=alice, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    event = ActivityEvent.objects.get(verb="webhook.created")
    delivery = Delivery.objects.create(event=event, webhook=webhook, channel="webhook")
    page = reverse("notifications:webhook", args=[webhook.pk])
    delete = reverse("notifications:webhook-delete", args=[webhook.pk])
    replay = reverse("notifications:delivery-replay", args=[delivery.pk])
    change = {"url": receiver.url + "x", "events": ["stage.applied"], "active": ""}
    assert mallory_client.get(page).status_code == 404
    for url, data in ((page, change), (delete, {}), (replay, {})):
        assert mallory_client.post(url, data).status_code == 404
        refused = carol_client.post(url, data)
        assert (refused.status_code, messages_of(refused)[-1:]) == (302, WRITE_REFUSED)
    assert carol_client.get(page).status_code == 403
    assert Webhook.objects.filter(pk=webhook.pk, url=receiver.url, active=True).exists()
    assert Delivery.objects.get(pk=delivery.pk).attempts == 0
    assert not ActivityEvent.objects.filter(
        verb__in=["webhook.updated", "webhook.deleted"]
    ).exists()
    email = Delivery.objects.create(event=event, user=carol, channel="email")
    email_replay = reverse("notifications:delivery-replay", args=[email.pk])
    assert alice_client.post(email_replay).status_code == 404  # a recipient's, no webhook's
    assert alice_client.post(delete).status_code == 302
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


def test_it_lists_org_webhooks_for_org_admins_only(
    admin_client, alice_client, mallory_client, acme
):
    url = reverse("notifications:org-webhooks", args=[acme.slug])
    assert admin_client.get(url).status_code == 200
    assert alice_client.get(url).status_code == 403
    assert mallory_client.get(url).status_code == 404


def render_include(name: str, model, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    template = Template('{% include "notifications/includes/' + name + '" %}')
    return template.render(RequestContext(request, {"model": model}))


def test_it_renders_the_includes_the_model_card_uses(allow_private, model, alice, carol):
    button = render_include("_watch_button.html", model, carol)
    assert watch_url(model) in button and ">Watch<" in button
    Watch.objects.create(model=model, user=carol)
    assert watch_url(model, "unwatch") in render_include("_watch_button.html", model, carol)
    assert webhooks_url(model) in render_include("_webhooks.html", model, alice)
    assert webhooks_url(model) not in render_include("_webhooks.html", model, carol)
