import re
import uuid

from django.conf import settings
from django.db import models

from registry.errors import Invalid, Locked
from registry.models.catalog import UNREAD, Branch, RegisteredModel, viewable_in
from registry.models.choices import LockLevel, Stage
from registry.models.history import history_records

SEMVER_PATTERN = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

# SPEC 2 and 3.2: what a lock protects. Artifacts and parents are ingredients too; they live
# in their own tables, whose guards look at the version's level.
INGREDIENT_FIELDS = (
    "framework",
    "flavor",
    "environment",
    "datasets",
    "code_version",
    "params",
    "metrics",
    "input_schema",
    "output_schema",
    "experiment_id",
    "source_run",
)
FREE_METADATA_FIELDS = ("description", "readme", "tags", "label")
IDENTITY_FIELDS = ("model_id", "number", "branch_id")
# Columns a bulk update() may touch on a closed version.
_UPDATABLE_WHEN_CLOSED = {"description", "readme", "tags", "stage", "updated_at"}


def _closed_refusal(number: int, what: str) -> str:
    return (
        f"version {number} is closed: {what} never change, not even for an admin; "
        "register a new version instead"
    )


class ModelVersionQuerySet(models.QuerySet):
    def visible_to(self, user) -> "ModelVersionQuerySet":
        return self.filter(model__in=RegisteredModel.objects.visible_to(user))

    def visible_in(self, user, org, role=UNREAD) -> "ModelVersionQuerySet":
        """Versions of `org` the user may view (RegisteredModelQuerySet.visible_in), tested
        on the joined model row rather than through a subquery of models."""
        return self.filter(viewable_in(user, org, "model__", role=role))

    def by_digest(self, digest: str) -> "ModelVersionQuerySet":
        return self.filter(digest=digest)

    def update(self, **kwargs):
        guarded = sorted(set(kwargs) - _UPDATABLE_WHEN_CLOSED)
        if guarded:
            closed = self.filter(lock_level=LockLevel.CLOSED).order_by("number").first()
            if closed is not None:
                raise Locked(_closed_refusal(closed.number, f"its {', '.join(guarded)}"))
        return super().update(**kwargs)

    def delete(self):
        closed = self.filter(lock_level=LockLevel.CLOSED).order_by("number").first()
        if closed is not None:
            raise Locked(_closed_refusal(closed.number, "it is never deleted and its ingredients"))
        return super().delete()

    delete.queryset_only = True


class ModelVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=128, null=True, blank=True)
    digest = models.CharField(max_length=71, db_index=True)
    branch = models.ForeignKey(Branch, on_delete=models.RESTRICT, related_name="versions")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.UNASSIGNED)
    lock_level = models.CharField(max_length=8, choices=LockLevel.choices)

    description = models.TextField(blank=True)
    readme = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)

    framework = models.CharField(max_length=64, blank=True)
    flavor = models.CharField(max_length=64, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    datasets = models.JSONField(default=list, blank=True)
    code_version = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    input_schema = models.JSONField(null=True, blank=True)
    output_schema = models.JSONField(null=True, blank=True)
    experiment_id = models.CharField(max_length=256, blank=True)
    source_run = models.CharField(max_length=1024, blank=True)
    parents = models.ManyToManyField(
        "self",
        through="VersionParent",
        through_fields=("child", "parent"),
        symmetrical=False,
        related_name="children",
        blank=True,
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = history_records(excluded_fields=["updated_at"])

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_unique_number"),
            models.UniqueConstraint(
                fields=["model", "label"],
                condition=models.Q(label__isnull=False),
                name="version_unique_label",
            ),
        ]
        indexes = [
            models.Index(fields=["model", "stage"]),
            models.Index(fields=["model", "branch", "number"]),
        ]
        ordering = ["model_id", "-number"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    def save(self, *args, **kwargs):
        # An insert (create() forces one) has no stored row to compare with, and a save of
        # columns that may change even on a closed version (a stage, a description) writes
        # none of what the guard compares: neither reads the stored row. (The id is made
        # before the insert, so only force_insert says which saves insert.)
        update_fields = kwargs.get("update_fields")
        freely = update_fields is not None and set(update_fields) <= _UPDATABLE_WHEN_CLOSED
        if not kwargs.get("force_insert") and not freely:
            self._refuse_forbidden_change()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        stored = ModelVersion._base_manager.filter(pk=self.pk).values("lock_level").first()
        if stored and stored["lock_level"] == LockLevel.CLOSED:
            raise Locked(_closed_refusal(self.number, "it is never deleted and its ingredients"))
        return super().delete(*args, **kwargs)

    @property
    def is_closed(self) -> bool:
        return self.lock_level == LockLevel.CLOSED

    def _refuse_forbidden_change(self) -> None:
        """Refuse, whoever saves, what no actor may do (SPEC 3.2): the guard behind services."""
        columns = (*IDENTITY_FIELDS, *INGREDIENT_FIELDS, "digest", "label", "lock_level")
        stored = (
            ModelVersion._base_manager.filter(pk=self.pk)
            .values(*columns, "model__org__closed_is_final")
            .first()
        )
        if stored is None:
            return
        if any(getattr(self, f) != stored[f] for f in IDENTITY_FIELDS):
            raise Invalid("a version's model, number and branch never change")
        if stored["label"] and self.label != stored["label"]:
            raise Invalid(f"version {self.number}'s label {stored['label']} is immutable once set")
        if stored["lock_level"] != LockLevel.CLOSED:
            return
        changed = [f for f in (*INGREDIENT_FIELDS, "digest") if getattr(self, f) != stored[f]]
        if changed:
            raise Locked(_closed_refusal(self.number, f"its ingredients ({', '.join(changed)})"))
        if self.lock_level != LockLevel.CLOSED and stored["model__org__closed_is_final"]:
            raise Locked(
                f"version {self.number} is closed and the organization is in compliance mode: "
                "a closed version can never be lowered, by anyone"
            )


def moved_to(kwargs: dict, field: str) -> list:
    """The version an update() would move rows to, so that its guard looks there too."""
    target = kwargs.get(field, kwargs.get(f"{field}_id"))
    return [] if target is None else [getattr(target, "pk", target)]


def _refuse_links_of_closed_children(child_ids) -> None:
    closed = (
        ModelVersion._base_manager.filter(pk__in=child_ids, lock_level=LockLevel.CLOSED)
        .order_by("number")
        .first()
    )
    if closed is not None:
        raise Locked(_closed_refusal(closed.number, "its ingredients (parents)"))


class VersionParentQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        _refuse_links_of_closed_children({o.child_id for o in objs})
        return super().bulk_create(objs, *args, **kwargs)

    def update(self, **kwargs):
        _refuse_links_of_closed_children(self.values("child_id"))
        _refuse_links_of_closed_children(moved_to(kwargs, "child"))
        return super().update(**kwargs)

    def delete(self):
        _refuse_links_of_closed_children(self.values("child_id"))
        return super().delete()

    delete.queryset_only = True


class VersionParent(models.Model):
    """Lineage: a version's parents are ingredients, frozen with the rest when it closes."""

    child = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="parent_links")
    # RESTRICT: a version that others descend from cannot be deleted on its own.
    parent = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="child_links")

    objects = VersionParentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["child", "parent"], name="version_parent_unique"),
            models.CheckConstraint(
                condition=~models.Q(child=models.F("parent")), name="version_parent_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.parent_id} -> {self.child_id}"

    def save(self, *args, **kwargs):
        # The stored child too: moving a link to another child takes it from this one.
        _refuse_links_of_closed_children([self.child_id, *self._stored_child_id()])
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        _refuse_links_of_closed_children([self.child_id, *self._stored_child_id()])
        return super().delete(*args, **kwargs)

    def _stored_child_id(self) -> list:
        if self.pk is None:
            return []
        return list(
            VersionParent._base_manager.filter(pk=self.pk).values_list("child_id", flat=True)
        )


class VersionSequence(models.Model):
    """The last number given out per model: numbers are never reused, even after deletes.

    Kept apart from RegisteredModel so that taking the next number (a row lock) writes no
    history row and cannot collide with edits of the model itself.
    """

    model = models.OneToOneField(
        RegisteredModel, on_delete=models.CASCADE, primary_key=True, related_name="sequence"
    )
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.model_id}: {self.last_number}"
