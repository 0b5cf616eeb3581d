"""Notifications (SPEC 3.8): the activity log is the outbox, these tables record its delivery.

`Dispatch` marks an event as fanned out (the event row itself is append-only). `Delivery` is
one event to one recipient over one channel; its unique constraints make dispatch idempotent,
and its lease makes marking a delivery sent happen at most once while sending is retried
until it succeeds (at least once).
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models import ModelPermission, Role
from registry.models.catalog import granted_to, role_in


class Kind(models.TextChoices):
    """What a user may opt out of, per kind (a kind groups activity verbs)."""

    VERSION_CREATED = "version_created", "New versions"
    STAGE_REQUESTED = "stage_requested", "Stage change requests to review"
    STAGE_DECIDED = "stage_decided", "Decisions on my requests"
    STAGE_APPLIED = "stage_applied", "Stage changes"
    LOCK_CHANGED = "lock_changed", "Lock level changes"
    FLAG_RAISED = "flag_raised", "Flags raised"


VERB_KINDS = {
    "version.created": Kind.VERSION_CREATED,
    "stage.requested": Kind.STAGE_REQUESTED,
    "stage.approved": Kind.STAGE_DECIDED,
    "stage.rejected": Kind.STAGE_DECIDED,
    "stage.applied": Kind.STAGE_APPLIED,
    # The reviewers who were asked: their kind is the request's.
    "stage.cancelled": Kind.STAGE_REQUESTED,
    "lock.raised": Kind.LOCK_CHANGED,
    "lock.lowered": Kind.LOCK_CHANGED,
    "flag.raised": Kind.FLAG_RAISED,
}

# The verbs a webhook may subscribe to (SPEC 3.7).
WEBHOOK_EVENTS = [
    "model.created",
    "model.updated",
    "model.deleted",
    "version.created",
    "version.updated",
    "version.deleted",
    "artifact.added",
    "artifact.removed",
    "lock.raised",
    "lock.lowered",
    "stage.requested",
    "stage.approved",
    "stage.rejected",
    "stage.cancelled",
    "stage.superseded",
    "stage.applied",
    "alias.set",
    "alias.moved",
    "alias.removed",
    "alias.protected",
    "alias.unprotected",
    "comment.added",
    "flag.raised",
    "flag.resolved",
    "branch.created",
    "branch.promoted",
    "permission.granted",
    "permission.revoked",
    "settings.changed",
]

# The verbs anybody can be told of, by e-mail or webhook: the only events dispatched, and
# the only ones the sweep looks for.
DISPATCHED_VERBS = frozenset(VERB_KINDS) | frozenset(WEBHOOK_EVENTS)


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class NotificationPreference(models.Model):
    """A user's opt-out of one kind of e-mail (no row: the user receives that kind)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_prefs"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notification_pref_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.kind} {'on' if self.enabled else 'off'}"


def new_secret() -> str:
    return secrets.token_hex(32)


class WebhookQuerySet(models.QuerySet):
    def manageable_by(self, user, org) -> "WebhookQuerySet":
        """The webhooks of `org` that `user` may manage (notifications.services.
        get_webhook_for_user fetches one by the same rule): all of them for an org admin; for
        another member those of the models they, or a team of theirs, may write; none for
        anybody else."""
        of_org = self.filter(org=org)
        role = role_in(user, org)
        if role == Role.ADMIN:
            return of_org
        if role is None:
            return of_org.none()
        # An org-wide webhook has no model, so no grant: org admins only.
        return of_org.filter(granted_to(user, ModelPermission.WRITE, model_ref="model_id"))


class Webhook(models.Model):
    """A signed POST target for chosen events of one model, or of every model of an org."""

    org = models.ForeignKey(
        "registry.Organization", on_delete=models.CASCADE, related_name="webhooks"
    )
    model = models.ForeignKey(
        "registry.RegisteredModel",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhooks",
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128, default=new_secret)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["org_id", "pk"]

    def __str__(self) -> str:
        scope = self.model.name if self.model_id else "all models"
        return f"webhook #{self.pk} ({scope}) → {self.url}"


class Dispatch(models.Model):
    """The outbox marker: this event's deliveries exist. The sweep looks for events without."""

    event = models.OneToOneField(
        "registry.ActivityEvent",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        primary_key=True,
        related_name="+",
    )
    dispatched_at = models.DateTimeField(auto_now_add=True)
    deliveries = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"event {self.event_id} dispatched at {self.dispatched_at:%Y-%m-%d %H:%M:%S}"


class Delivery(models.Model):
    """One event to one recipient (a user or a webhook) over one channel, and its log."""

    event = models.ForeignKey(
        "registry.ActivityEvent",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    status = models.CharField(
        max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Whoever holds an unexpired lease is sending; a crashed sender's lease runs out.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "user", "channel"],
                condition=Q(user__isnull=False),
                name="delivery_once_per_user",
            ),
            models.UniqueConstraint(
                fields=["event", "webhook", "channel"],
                condition=Q(webhook__isnull=False),
                name="delivery_once_per_webhook",
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=False, webhook__isnull=True, channel="email")
                | Q(user__isnull=True, webhook__isnull=False, channel="webhook"),
                name="delivery_one_recipient",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        to = self.user or self.webhook
        return f"event {self.event_id} → {to} ({self.channel}, {self.status})"
