from django.conf import settings
from django.db import models

from registry.errors import Invalid, Locked
from registry.models.choices import LockLevel
from registry.models.history import history_records
from registry.models.versions import ModelVersion, moved_to


class BlobQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if {"sha256", "size"} & set(kwargs):
            raise Invalid("a blob is content-addressed: its hash and size never change")
        return super().update(**kwargs)


class Blob(models.Model):
    """Bytes stored once under their SHA-256, whatever number of artifacts point at them."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BlobQuerySet.as_manager()

    def __str__(self) -> str:
        return f"sha256:{self.sha256[:12]}… ({self.size} bytes)"

    def save(self, *args, **kwargs):
        if not kwargs.get("force_insert"):  # an insert (create() forces one) has nothing stored
            stored = Blob._base_manager.filter(pk=self.pk).values("size").first()
            if stored is not None and stored["size"] != self.size:
                raise Invalid("a blob is content-addressed: its size never changes")
        super().save(*args, **kwargs)


def _refuse_for_closed_versions(version_ids, action: str) -> None:
    closed = (
        ModelVersion._base_manager.filter(pk__in=version_ids, lock_level=LockLevel.CLOSED)
        .order_by("number")
        .first()
    )
    if closed is not None:
        raise Locked(
            f"version {closed.number} is closed: its artifacts cannot be {action}, not even by "
            "an admin; register a new version instead"
        )


class ArtifactQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        _refuse_for_closed_versions({o.version_id for o in objs}, "added")
        return super().bulk_create(objs, *args, **kwargs)

    def update(self, **kwargs):
        _refuse_for_closed_versions(self.values("version_id"), "changed")
        _refuse_for_closed_versions(moved_to(kwargs, "version"), "added")
        return super().update(**kwargs)

    def delete(self):
        _refuse_for_closed_versions(self.values("version_id"), "removed")
        return super().delete()

    delete.queryset_only = True


class Artifact(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=512)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="artifacts")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = history_records()

    objects = ArtifactQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "path"], name="artifact_unique_path")
        ]
        ordering = ["version_id", "path"]

    def __str__(self) -> str:
        return self.path

    def save(self, *args, **kwargs):
        _refuse_for_closed_versions([self.version_id], "added or changed")
        # The stored row too: moving an artifact to another version removes it from this one.
        _refuse_for_closed_versions(self._stored_version_id(), "changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _refuse_for_closed_versions([self.version_id, *self._stored_version_id()], "removed")
        return super().delete(*args, **kwargs)

    def _stored_version_id(self) -> list:
        if self.pk is None:
            return []
        return list(Artifact._base_manager.filter(pk=self.pk).values_list("version_id", flat=True))

    @property
    def sha256(self) -> str:
        return self.blob_id

    @property
    def size(self) -> int:
        return self.blob.size
