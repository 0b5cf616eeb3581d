from django.conf import settings
from django.db import models

from registry.errors import Invalid
from registry.models.catalog import RegisteredModel, name_validator
from registry.models.history import history_records
from registry.models.versions import ModelVersion


class AliasQuerySet(models.QuerySet):
    def visible_to(self, user) -> "AliasQuerySet":
        return self.filter(model__in=RegisteredModel.objects.visible_to(user))


class Alias(models.Model):
    """A movable named pointer to one version of a model (`fraud@champion`, SPEC 2).

    Changed only through registry.services.aliases; a protected alias moves only by an org
    admin or an approved request.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=128, validators=[name_validator])
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="aliases")
    protected = models.BooleanField(
        default=False, help_text="Only org admins, or an approved request, move or remove it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = history_records(excluded_fields=["updated_at"])

    objects = AliasQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique_name")]
        ordering = ["model_id", "name"]
        verbose_name_plural = "aliases"

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"

    def save(self, *args, **kwargs):
        version_model = (
            ModelVersion._base_manager.filter(pk=self.version_id)
            .values_list("model_id", flat=True)
            .first()
        )
        if version_model != self.model_id:
            raise Invalid(f"alias {self.name} must point at a version of its own model")
        super().save(*args, **kwargs)
