"""The admin console's webhook pages and replay action, and the delivery lease."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.models import Delivery, DeliveryStatus
from notifications.sending import delivery_send
from notifications.services import outbox_sweep, webhook_create
from registry.models import ActivityEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(settings, receiver, model, admin):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    webhook = webhook_create(
        actor=admin, org=model.org, model=model, url=receiver.url, events=["stage.applied"]
    )
    event = ActivityEvent.objects.get(verb="webhook.created")
    return Delivery.objects.create(event=event, webhook=webhook, channel="webhook")


def test_it_lists_webhooks_and_deliveries_in_the_admin(admin_client, delivery):
    # Each list links to its row's change page (a bare id could match any number on the page).
    rows = {"webhook": delivery.webhook_id, "delivery": delivery.pk}
    for name, pk in rows.items():
        page = admin_client.get(reverse(f"admin:notifications_{name}_changelist"))
        assert page.status_code == 200
        change = reverse(f"admin:notifications_{name}_change", args=[pk])
        assert f'href="{change}"'.encode() in page.content


def test_it_replays_from_the_admin(
    admin_client, delivery, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:notifications_delivery_changelist"),
            {"action": "replay", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and len(receiver.hits) == 1


def test_it_sends_nothing_while_another_sender_holds_the_lease(delivery, receiver):
    Delivery.objects.filter(pk=delivery.pk).update(
        lease_until=timezone.now() + timedelta(seconds=60)
    )
    assert delivery_send(delivery_id=delivery.pk).skipped
    assert receiver.hits == []
    assert outbox_sweep(older_than=0)[1] == []  # held: not handed to anyone else


def test_it_hands_over_a_delivery_whose_sender_died(delivery, receiver):
    Delivery.objects.filter(pk=delivery.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1), attempts=1
    )
    assert outbox_sweep(older_than=0)[1] == [delivery.pk]
    assert delivery_send(delivery_id=delivery.pk).sent
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.hits)) == ("sent", 2, 1)
    assert delivery_send(delivery_id=delivery.pk).skipped  # marked once: never sent again
    assert len(receiver.hits) == 1
