"""Who may do what to a model (SPEC 3.1), and fetch helpers that say 404 before 403.

Org admins (and superusers) hold view, write and approve on every model of their org. Others
hold what was granted to them or their teams; with visibility=organization every member views.
"""

from dataclasses import dataclass
from typing import Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Subquery

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


# The annotations that answer model_access in the query that fetches the model (or the
# version), so that a fetch with its permission check is one round trip, not five.
_ROLE = "_access_role"
_GRANTS = {need: f"_access_{need}" for need in ("view", "write", "approve")}
_CODENAMES = {
    "view": ModelPermission.VIEW,
    "write": ModelPermission.WRITE,
    "approve": ModelPermission.APPROVE,
}


def access_annotations(user: UserLike, model_ref: str = "pk", org_ref: str = "org_id") -> dict:
    """The user's role in the model's org and their grants on the model, as subqueries of a
    query over models (defaults) or over rows that point at one (`model_ref="model_id"`,
    `org_ref="model__org_id"`). Read them back with `access_from`."""
    annotations = {
        _ROLE: Subquery(
            Membership.objects.filter(user_id=user.pk, org_id=OuterRef(org_ref)).values("role")[:1]
        )
    }
    teams = get_user_model().groups.through.objects.filter(user_id=user.pk).values("group_id")
    for need, codename in _CODENAMES.items():
        by_user = ModelUserPermission.objects.filter(
            user_id=user.pk, content_object_id=OuterRef(model_ref), permission__codename=codename
        )
        by_team = ModelGroupPermission.objects.filter(
            group_id__in=teams, content_object_id=OuterRef(model_ref), permission__codename=codename
        )
        annotations[_GRANTS[need]] = Exists(by_user) | Exists(by_team)
    return annotations


def access_from(user: UserLike, row, visibility: str) -> Access:
    """The Access that `access_annotations` found for `row` (a model or object instance, or
    a values() dict), given the model's visibility as read in the same query."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    if not _active(user):
        return Access()
    role = Role.ADMIN if user.is_superuser else get(_ROLE)
    if role is None:
        return Access()
    if role == Role.ADMIN:
        return Access(view=True, write=True, approve=True, admin=True)
    view, write, approve = (bool(get(_GRANTS[need])) for need in ("view", "write", "approve"))
    view = view or write or approve or visibility == Visibility.ORGANIZATION
    return Access(view=view, write=write, approve=approve)


def model_access(user: UserLike, model: RegisteredModel) -> Access:
    if not _active(user):
        return Access()
    # As stored, not as the caller's instance says: a model made private a moment ago is
    # private now.
    row = (
        RegisteredModel.objects.filter(pk=model.pk)
        .annotate(**access_annotations(user))
        .values("visibility", _ROLE, *_GRANTS.values())
        .first()
    )
    if row is None:
        return Access()
    return access_from(user, row, row["visibility"])


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
    user: UserLike, org: str | Organization, name: str, need: Need = "view"
) -> RegisteredModel:
    """The model with its permission check in one query: 404 unless the user may view it."""
    if not _active(user):
        raise NotFound(f"model {name} not found")
    slug = org if isinstance(org, str) else org.slug
    model = (
        RegisteredModel.objects.select_related("org")
        .filter(org__slug=slug, name=name)
        .annotate(**access_annotations(user))
        .first()
    )
    if model is None:
        raise NotFound(f"model {name} not found")
    _check(user, model, access_from(user, model, model.visibility), need)
    return model


def get_version_for_user(
    user: UserLike, org: str | Organization, model: str, number: int, need: Need = "view"
) -> ModelVersion:
    """The version, its model and the permission check in one query."""
    if not _active(user):
        raise NotFound(f"model {model} not found")
    slug = org if isinstance(org, str) else org.slug
    version = (
        ModelVersion.objects.select_related("model__org", "branch")
        .filter(model__org__slug=slug, model__name=model, number=number)
        .annotate(**access_annotations(user, "model_id", "model__org_id"))
        .first()
    )
    if version is None:
        # Which 404: the model's (not viewable, or absent) or the version's.
        get_model_for_user(user, org, model, "view")
        raise NotFound(f"version {number} of model {model} not found")
    _check(user, version.model, access_from(user, version, version.model.visibility), need)
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
