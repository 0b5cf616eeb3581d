import re

from django.apps import apps
from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import BooleanField, Expression, F, Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from registry.errors import Locked
from registry.models.choices import LockLevel, Role, Visibility
from registry.models.history import history_records
from registry.models.orgs import Membership, Organization

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


def is_acting(user) -> bool:
    """Whether `user` may do anything at all: signed in and active."""
    return bool(getattr(user, "is_authenticated", False) and user.is_active)


def token_org_id(user) -> int | None:
    """The organization that the API token of this request confines `user` to, or None.
    registry.services.tokens.token_authenticate marks the user it returns with its token;
    a session is not confined."""
    token = getattr(user, "api_token", None)
    return None if token is None else token.org_id


def confined_away(user, org_id: int) -> bool:
    """Whether `user` acts through a token bound to another org than `org_id`: to such a
    token, that org is as absent as to an outsider (SPEC 4.6)."""
    bound = token_org_id(user)
    return bound is not None and bound != org_id


def role_in(user, org: Organization) -> str | None:
    """The role `user` acts with in `org` (SPEC 3.1): admin of every org for a superuser,
    none for a non-member, an inactive or anonymous user, or a token bound elsewhere."""
    if not is_acting(user) or confined_away(user, org.pk):
        return None
    if user.is_superuser:
        return Role.ADMIN
    return Membership.objects.filter(user=user, org=org).values_list("role", flat=True).first()


class GrantedTo(Expression):
    """That the user `user_id` or a team of theirs holds `codename` (with None, any of view,
    write and approve) on the model whose id is at `model_ref` of the query. The two EXISTS
    are written out, as a query expression (Django's documented way to add SQL to a query):
    built from querysets with Exists they cost a member's list or search 0.6 ms of its 2.6.
    tests/registry/test_visibility.py holds them to the answer of those querysets."""

    output_field = BooleanField()
    SQL = (
        "(EXISTS (SELECT 1 FROM registry_modeluserpermission granted_u"
        " WHERE granted_u.content_object_id = {model} AND granted_u.user_id = %s{of_user})"
        " OR EXISTS (SELECT 1 FROM registry_modelgrouppermission granted_t"
        " JOIN auth_user_groups granted_ug ON granted_ug.group_id = granted_t.group_id"
        " WHERE granted_t.content_object_id = {model} AND granted_ug.user_id = %s{of_team}))"
    )
    OF_CODENAME = " AND {row}.permission_id IN (SELECT id FROM auth_permission WHERE codename = %s)"

    def __init__(self, user_id: int, model_ref: str = "pk", codename: str | None = None) -> None:
        super().__init__()
        self.user_id, self.codename = user_id, codename
        self.model = F(model_ref)

    def get_source_expressions(self) -> list:
        return [self.model]

    def set_source_expressions(self, exprs) -> None:
        (self.model,) = exprs

    def as_sql(self, compiler, connection):
        model, params = compiler.compile(self.model)
        of_kind, kind = "", ()
        if self.codename is not None:
            of_kind, kind = self.OF_CODENAME, (str(self.codename),)
        of_user, of_team = of_kind.format(row="granted_u"), of_kind.format(row="granted_t")
        sql = self.SQL.format(model=model, of_user=of_user, of_team=of_team)
        each = (*params, self.user_id, *kind)  # the user's EXISTS, then the team's: alike
        return sql, (*each, *each)


def granted_to(user, codename: str | None = None, model_ref: str = "pk") -> Q:
    """That `user` or a team of theirs holds `codename` (with None, any of view, write and
    approve) on the model at `model_ref` of the query."""
    return Q(GrantedTo(user.pk, model_ref, codename))


def _viewable_by_member(user, prefix: str) -> Q:
    """The models a member who is not an admin of their org views: those shared with the
    org, and those granted to them or a team of theirs. `prefix="model__"` says it of rows
    that point at a model."""
    shared = Q(**{f"{prefix}visibility": Visibility.ORGANIZATION})
    return shared | granted_to(user, model_ref="model_id" if prefix else "pk")


# That a caller has not read the user's role in the org: visible_in reads it.
UNREAD = object()


def viewable_in(user, org: Organization, prefix: str = "", role=UNREAD) -> Q:
    """The condition of RegisteredModelQuerySet.visible_in on models, or with
    `prefix="model__"` on rows that point at one."""
    if role is UNREAD:
        role = role_in(user, org)
    if role is None:
        return Q(pk__in=[])
    of_org = Q(**{f"{prefix}org": org})
    return of_org if role == Role.ADMIN else of_org & _viewable_by_member(user, prefix)


class RegisteredModelQuerySet(models.QuerySet):
    def visible_to(self, user) -> "RegisteredModelQuerySet":
        """Models the user may view (SPEC 3.1): anything less is as if it did not exist.
        access_from (the permissions module) says the same of one model, and a test holds the
        two to one answer."""
        if not is_acting(user):
            return self.none()
        bound = token_org_id(user)
        models_qs = self if bound is None else self.filter(org_id=bound)
        if user.is_superuser:
            return models_qs
        memberships = Membership.objects.filter(user=user)
        admin_orgs = memberships.filter(role=Role.ADMIN).values("org_id")
        member_orgs = memberships.values("org_id")
        return models_qs.filter(
            Q(org__in=admin_orgs) | (Q(org__in=member_orgs) & _viewable_by_member(user, ""))
        )

    def visible_in(self, user, org: Organization, role=UNREAD) -> "RegisteredModelQuerySet":
        """The rows of visible_to(user) in `org`. The user's role (as role_in gives it) is
        read first, or given by a caller who read it with the org, so that the query holds
        only the test that role needs: a simpler statement, which PostgreSQL plans and
        estimates better than the general one narrowed to the org."""
        return self.filter(viewable_in(user, org, role=role))

    def delete(self):
        held = closed_versions_of(self)
        if held:
            raise Locked(held)
        return super().delete()

    delete.queryset_only = True


def closed_versions_of(models_qs) -> str:
    """A refusal message if any of these models holds a closed version, else ''."""
    # Through the app registry: registry.models.versions imports this module.
    ModelVersion = apps.get_model("registry", "ModelVersion")

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
    history = history_records()

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
    history = history_records()

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
    history = history_records()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["model", "version", "created_at"])]

    def __str__(self) -> str:
        return f"comment by {self.author} on {self.model.name}"
