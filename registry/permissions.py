"""Who may do what to a model (SPEC 3.1), and fetch helpers that say 404 before 403.

Org admins (and superusers) hold view, write and approve on every model of their org. Others
hold what was granted to them or their teams; with visibility=organization every member views.
"""

from dataclasses import dataclass
from typing import Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, QuerySet, Subquery

from registry.errors import Forbidden, Invalid, NotFound
from registry.models import (
    Membership,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    ModelVersion,
    Organization,
    RegisteredModel,
    Role,
    Visibility,
)

Need = Literal["view", "write", "approve", "admin"]
UserLike = AbstractBaseUser | AnonymousUser


def _active(user: UserLike) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active)


def org_role(user: UserLike, org: Organization) -> str | None:
    if not _active(user):
        return None
    if user.is_superuser:
        return Role.ADMIN
    return Membership.objects.filter(user=user, org=org).values_list("role", flat=True).first()


def is_org_admin(user: UserLike, org: Organization) -> bool:
    return org_role(user, org) == Role.ADMIN


@dataclass(frozen=True)
class Access:
    view: bool = False
    write: bool = False
    approve: bool = False
    admin: bool = False

    def allows(self, need: Need) -> bool:
        return getattr(self, need)


# The fetch of a model (or of a version with its model) carries the user's role in the org
# as a subquery; org admins need nothing more, members one query for their grants. Compiling
# the grants into the fetch as well costs more ORM time than the round trip it saves.
_ROLE = "_access_role"
_CODENAMES = {
    ModelPermission.VIEW: "view",
    ModelPermission.WRITE: "write",
    ModelPermission.APPROVE: "approve",
}


def access_annotations(user: UserLike, org_ref: str = "org_id") -> dict:
    """The user's role in the model's org, as a subquery of a query over models (default) or
    over rows that point at one (`org_ref="model__org_id"`). Read back with `access_from`."""
    role = Membership.objects.filter(user_id=user.pk, org_id=OuterRef(org_ref)).values("role")
    return {_ROLE: Subquery(role[:1])}


def _grants(user: UserLike, model_id: int) -> set[str]:
    """The words (view, write, approve) granted on the model to the user or their teams."""
    by_user = ModelUserPermission.objects.filter(
        user_id=user.pk, content_object_id=model_id
    ).values_list("permission__codename", flat=True)
    teams = get_user_model().groups.through.objects.filter(user_id=user.pk).values("group_id")
    by_team = ModelGroupPermission.objects.filter(
        group_id__in=teams, content_object_id=model_id
    ).values_list("permission__codename", flat=True)
    return {_CODENAMES[c] for c in by_user.union(by_team) if c in _CODENAMES}


def access_from(user: UserLike, role: str | None, model_id: int, visibility: str) -> Access:
    """The Access of `user` on a model, from their role in its org (as `access_annotations`
    read it) and the model's visibility read in the same query."""
    if not _active(user):
        return Access()
    if user.is_superuser:
        role = Role.ADMIN
    if role is None:
        return Access()
    if role == Role.ADMIN:
        return Access(view=True, write=True, approve=True, admin=True)
    grants = _grants(user, model_id)
    view = bool(grants) or visibility == Visibility.ORGANIZATION
    return Access(view=view, write="write" in grants, approve="approve" in grants)


def model_access(user: UserLike, model: RegisteredModel) -> Access:
    if not _active(user):
        return Access()
    # As stored, not as the caller's instance says: a model made private a moment ago is
    # private now.
    row = (
        RegisteredModel.objects.filter(pk=model.pk)
        .annotate(**access_annotations(user))
        .values("visibility", _ROLE)
        .first()
    )
    if row is None:
        return Access()
    return access_from(user, row[_ROLE], model.pk, row["visibility"])


def _need_message(need: Need, model: RegisteredModel) -> str:
    if need == "admin":
        return f"this needs an org admin of {model.org.slug}"
    return f"you do not have {need} permission on model {model.name}"


def require(user: UserLike, model: RegisteredModel, need: Need) -> Access:
    """NotFound when the user may not view the model, Forbidden when they may not `need`."""
    access = model_access(user, model)
    _check(user, model, access, need)
    return access


def require_org(user: UserLike, org: Organization, need: Literal["member", "admin"]) -> str:
    role = org_role(user, org)
    if role is None:
        raise NotFound(f"organization {org.slug} not found")
    if need == "admin" and role != Role.ADMIN:
        raise Forbidden(f"this needs an org admin of {org.slug}")
    return role


def get_org_for_user(
    user: UserLike, org: str | Organization, need: Literal["member", "admin"] = "member"
) -> Organization:
    if isinstance(org, str):
        found = Organization.objects.filter(slug=org).first()
        if found is None:
            raise NotFound(f"organization {org} not found")
        org = found
    require_org(user, org, need)
    return org


def _check(user: UserLike, model: RegisteredModel, access: Access, need: Need) -> None:
    if not access.view:
        raise NotFound(f"model {model.name} not found")
    if not access.allows(need):
        raise Forbidden(_need_message(need, model))


def get_model_for_user(
    user: UserLike,
    org: str | Organization,
    name: str,
    need: Need = "view",
    queryset: QuerySet | None = None,
) -> RegisteredModel:
    """The model, fetched with the user's role in one query (a member's grants take one
    more): 404 unless the user may view it. `queryset` adds what the caller renders."""
    if not _active(user):
        raise NotFound(f"model {name} not found")
    slug = org if isinstance(org, str) else org.slug
    model = (
        (RegisteredModel.objects.all() if queryset is None else queryset)
        .select_related("org")
        .filter(org__slug=slug, name=name)
        .annotate(**access_annotations(user))
        .first()
    )
    if model is None:
        raise NotFound(f"model {name} not found")
    _check(user, model, access_from(user, getattr(model, _ROLE), model.pk, model.visibility), need)
    return model


def get_version_for_user(
    user: UserLike,
    org: str | Organization,
    model: str,
    number: int,
    need: Need = "view",
    queryset: QuerySet | None = None,
) -> ModelVersion:
    """The version with its model and the user's role in one query (a member's grants take
    one more). `queryset` adds what the caller renders."""
    if not _active(user):
        raise NotFound(f"model {model} not found")
    slug = org if isinstance(org, str) else org.slug
    version = (
        (ModelVersion.objects.all() if queryset is None else queryset)
        .select_related("model__org", "branch")
        .filter(model__org__slug=slug, model__name=model, number=number)
        .annotate(**access_annotations(user, "model__org_id"))
        .first()
    )
    if version is None:
        # Which 404: the model's (not viewable, or absent) or the version's.
        get_model_for_user(user, org, model, "view")
        raise NotFound(f"version {number} of model {model} not found")
    role = getattr(version, _ROLE)
    _check(
        user,
        version.model,
        access_from(user, role, version.model_id, version.model.visibility),
        need,
    )
    return version


def get_version_by_ref(
    user: UserLike,
    org: str | Organization,
    ref: str,
    number: int | None = None,
    need: Need = "view",
) -> ModelVersion:
    """A version named as `model@alias` (`fraud@champion`), or as `model` with its number."""
    name, at, alias = ref.partition("@")
    if not at:
        if number is None:
            raise Invalid(f"name a version as {ref}@<alias> or give its number")
        return get_version_for_user(user, org, name, number, need)
    if number is not None:
        raise Invalid("name a version by an alias or by a number, not both")
    registered = get_model_for_user(user, org, name, "view")
    version = (
        ModelVersion.objects.select_related("model__org", "branch")
        .filter(model=registered, aliases__name=alias)
        .first()
    )
    if version is None:
        raise NotFound(f"alias {alias} of model {name} not found")
    require(user, registered, need)
    return version
