import re

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Exists, OuterRef, Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from registry.errors import Locked
from registry.models.choices import LockLevel, Role, Visibility
from registry.models.orgs import Membership, Organization

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


def viewer_kind(user, org: Organization) -> str | None:
    """How the user views `org`'s models: "all" (org admin, superuser), "member" (those
    shared with the org or granted), or None (nothing)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return "all"
    from registry.permissions import org_role  # which imports these models

    role = org_role(user, org)
    if role is None:
        return None
    return "all" if role == Role.ADMIN else "member"


def viewable_condition(kind: str | None, user_id: int, org_id: int, model_ref: str = "") -> Q:
    """The condition of viewer_kind's `kind` on models (or, with `model_ref="model__"`, on
    rows with a `model` foreign key): of the org, and viewable by that user (SPEC 3.1)."""
    if kind is None:
        return Q(pk__in=[])
    of_org = Q(**{f"{model_ref}org_id": org_id})
    if kind == "all":
        return of_org
    pk = OuterRef("model_id" if model_ref else "pk")
    user_grant = ModelUserPermission.objects.filter(user_id=user_id, content_object=pk)
    team_grant = ModelGroupPermission.objects.filter(group__user=user_id, content_object=pk)
    return of_org & (
        Q(**{f"{model_ref}visibility": Visibility.ORGANIZATION})
        | Exists(user_grant)
        | Exists(team_grant)
    )


def viewable_in(user, org: Organization, model_ref: str = "") -> Q:
    """The condition on models (or rows pointing at one) that they are of `org` and
    viewable by the user; see visible_in."""
    return viewable_condition(viewer_kind(user, org), user.pk, org.pk, model_ref)


class RegisteredModelQuerySet(models.QuerySet):
    def visible_to(self, user) -> "RegisteredModelQuerySet":
        """Models the user may view (SPEC 3.1): anything less is as if it did not exist."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        memberships = Membership.objects.filter(user=user)
        admin_orgs = memberships.filter(role=Role.ADMIN).values("org_id")
        member_orgs = memberships.values("org_id")
        # Any of view, write or approve lets a member see the model.
        user_grant = ModelUserPermission.objects.filter(user=user, content_object=OuterRef("pk"))
        team_grant = ModelGroupPermission.objects.filter(
            group__user=user, content_object=OuterRef("pk")
        )
        return self.filter(
            Q(org__in=admin_orgs)
            | (
                Q(org__in=member_orgs)
                & (Q(visibility=Visibility.ORGANIZATION) | Exists(user_grant) | Exists(team_grant))
            )
        )

    def visible_in(self, user, org: Organization) -> "RegisteredModelQuerySet":
        """The models of `org` the user may view: the rows of visible_to(user) in `org`, with
        the user's role read first, so that the query holds only the test that role needs
        (a simpler statement, which PostgreSQL plans and estimates better)."""
        return self.filter(viewable_in(user, org))

    def delete(self):
        held = closed_versions_of(self)
        if held:
            raise Locked(held)
        return super().delete()

    delete.queryset_only = True


def closed_versions_of(models_qs) -> str:
    """A refusal message if any of these models holds a closed version, else ''."""
    from registry.models.versions import ModelVersion

    closed = (
        ModelVersion._base_manager.filter(model__in=models_qs, lock_level=LockLevel.CLOSED)
        .select_related("model")
        .order_by("model__name", "number")
        .first()
    )
    if closed is None:
        return ""
    return (
        f"model {closed.model.name} holds closed version {closed.number}: a model that holds "
        "a closed version cannot be deleted"
    )


class RegisteredModel(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=128, validators=[name_validator])
    description = models.CharField(max_length=500, blank=True)
    readme = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_models",
    )
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.ORGANIZATION
    )
    required_approvals = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Overrides the organization's number of required approvals.",
    )
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="model_unique_name_in_org")
        ]
        permissions = [
            ("write_registeredmodel", "Can write (register versions, edit)"),
            ("approve_registeredmodel", "Can approve stage changes"),
        ]
        ordering = ["org_id", "name"]

    def __str__(self) -> str:
        return f"{self.org.slug}/{self.name}"

    @property
    def effective_required_approvals(self) -> int:
        return self.required_approvals or self.org.required_approvals

    def delete(self, *args, **kwargs):
        held = closed_versions_of(RegisteredModel._base_manager.filter(pk=self.pk))
        if held:
            raise Locked(held)
        return super().delete(*args, **kwargs)


class ModelUserPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False


class ModelGroupPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        abstract = False


class Branch(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=128, validators=[name_validator])
    protected = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    MAIN = "main"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="branch_unique_name")]
        ordering = ["model_id", "name"]
        verbose_name_plural = "branches"

    def __str__(self) -> str:
        return f"{self.model.name}:{self.name}"


class Watch(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="watches")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watches"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "user"], name="watch_unique")]
        verbose_name_plural = "watches"

    def __str__(self) -> str:
        return f"{self.user} watches {self.model.name}"


class Comment(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="comments")
    version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="comments",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["model", "version", "created_at"])]

    def __str__(self) -> str:
        return f"comment by {self.author} on {self.model.name}"
