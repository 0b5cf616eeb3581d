from django.conf import settings
from django.db import models

from registry.errors import Forbidden
from registry.models.orgs import Organization

_APPEND_ONLY = "activity events are append-only: they are never changed or deleted"


class ActivityEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise Forbidden(_APPEND_ONLY)

    def delete(self):
        raise Forbidden(_APPEND_ONLY)

    delete.queryset_only = True

    def for_model(self, model) -> "ActivityEventQuerySet":
        return self.filter(model_id=model.pk)


class ActivityEvent(models.Model):
    """One link of an organization's hash chain (SPEC 3.7). Written only by services."""

    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    # The ids below are kept as they were when the event happened, even once the user,
    # model or version is gone: no database constraint, nothing cascades into the log.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    verb = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=300)
    model = models.ForeignKey(
        "registry.RegisteredModel",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        related_name="+",
    )
    changes = models.JSONField(default=dict)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = ActivityEventQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "seq"], name="event_unique_seq")]
        indexes = [
            models.Index(fields=["model", "created_at"]),
            models.Index(fields=["version", "created_at"]),
            models.Index(fields=["org", "created_at"]),
        ]
        ordering = ["org_id", "seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.verb} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:  # a stored event: its id is given by its insert
            raise Forbidden(_APPEND_ONLY)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise Forbidden(_APPEND_ONLY)


class ActivityChain(models.Model):
    """The head of an organization's chain: appending locks this row, so links never fork."""

    org = models.OneToOneField(
        Organization, on_delete=models.PROTECT, primary_key=True, related_name="chain"
    )
    seq = models.PositiveBigIntegerField(default=0)
    head = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.org_id}: #{self.seq} {self.head[:12]}"
