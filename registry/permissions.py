"""Who may do what to a model (SPEC 3.1), and fetch helpers that say 404 before 403.

Org admins (and superusers) hold view, write and approve on every model of their org. Others
hold what was granted to them or their teams; with visibility=organization every member views.
"""

from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

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


def model_access(user: UserLike, model: RegisteredModel) -> Access:
    role = org_role(user, model.org)
    if role is None:
        return Access()
    if role == Role.ADMIN:
        return Access(view=True, write=True, approve=True, admin=True)
    codenames = set(
        ModelUserPermission.objects.filter(user=user, content_object=model).values_list(
            "permission__codename", flat=True
        )
    ) | set(
        ModelGroupPermission.objects.filter(group__user=user, content_object=model).values_list(
            "permission__codename", flat=True
        )
    )
    write = ModelPermission.WRITE in codenames
    approve = ModelPermission.APPROVE in codenames
    # As stored, not as the caller's instance says: a model made private a moment ago is
    # private now.
    visibility = (
        RegisteredModel.objects.filter(pk=model.pk).values_list("visibility", flat=True).first()
    )
    view = bool(codenames) or visibility == Visibility.ORGANIZATION
    return Access(view=view, write=write, approve=approve)


def _need_message(need: Need, model: RegisteredModel) -> str:
    if need == "admin":
        return f"this needs an org admin of {model.org.slug}"
    return f"you do not have {need} permission on model {model.name}"


def require(user: UserLike, model: RegisteredModel, need: Need) -> Access:
    """NotFound when the user may not view the model, Forbidden when they may not `need`."""
    access = model_access(user, model)
    if not access.view:
        raise NotFound(f"model {model.name} not found")
    if not access.allows(need):
        raise Forbidden(_need_message(need, model))
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


def get_model_for_user(
    user: UserLike, org: str | Organization, name: str, need: Need = "view"
) -> RegisteredModel:
    slug = org if isinstance(org, str) else org.slug
    model = (
        RegisteredModel.objects.visible_to(user)
        .select_related("org")
        .filter(org__slug=slug, name=name)
        .first()
    )
    if model is None:
        raise NotFound(f"model {name} not found")
    require(user, model, need)
    return model


def get_version_for_user(
    user: UserLike, org: str | Organization, model: str, number: int, need: Need = "view"
) -> ModelVersion:
    registered = get_model_for_user(user, org, model, "view")
    version = (
        ModelVersion.objects.select_related("model__org", "branch")
        .filter(model=registered, number=number)
        .first()
    )
    if version is None:
        raise NotFound(f"version {number} of model {model} not found")
    require(user, registered, need)
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
