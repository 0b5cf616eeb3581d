from django.conf import settings
from django.db import models

from registry.models.catalog import RegisteredModel
from registry.models.history import history_records
from registry.models.versions import ModelVersion


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class FlagQuerySet(models.QuerySet):
    def visible_to(self, user) -> "FlagQuerySet":
        return self.filter(model__in=RegisteredModel.objects.visible_to(user))

    def open(self) -> "FlagQuerySet":
        return self.filter(resolved_at__isnull=True)


class Flag(models.Model):
    """A report that a version behaves unexpectedly (SPEC 3.10, post-market monitoring).

    Raised by anyone who may view the version, resolved by writers; open while `resolved_at`
    is empty. `digest` is the version's digest when the flag was raised, so that a monitor's
    report names exactly what it saw. Changed only through registry.services.flags.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="flags")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="flags")
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    summary = models.CharField(max_length=200)
    details = models.TextField(blank=True)
    digest = models.CharField(max_length=71)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)
    history = history_records()

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["version", "resolved_at"]),
            models.Index(fields=["model", "resolved_at"]),
        ]

    def __str__(self) -> str:
        return f"flag #{self.pk} on {self.version}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
