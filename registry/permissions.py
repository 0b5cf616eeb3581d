"""Who may do what to a model (SPEC 3.1), and fetch helpers that say 404 before 403.

Org admins (and superusers) hold view, write and approve on every model of their org. Others
hold what was granted to them or their teams; with visibility=organization every member views.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    FilteredRelation,
    OuterRef,
    Q,
    Subquery,
)

from registry.errors import Forbidden, Invalid, NotFound
from registry.models import (
    Branch,
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
from registry.prepared import Prepared

Need = Literal["view", "write", "approve", "admin"]
UserLike = AbstractBaseUser | AnonymousUser


def _active(user: UserLike) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active)


_ORG_ROLE = Prepared(
    lambda user_id, org_id: Membership.objects.filter(user_id=user_id, org_id=org_id).values_list(
        "role"
    ),
    int,
    int,
)


def _org_role_key(user: UserLike, org_id: int) -> tuple:
    """Where a user's role in an org is noted for the rest of a request."""
    return ("org", user.pk, org_id)


def org_role(user: UserLike, org: Organization) -> str | None:
    if not _active(user):
        return None
    if user.is_superuser:
        return Role.ADMIN
    noted, key = _NOTED.get(), _org_role_key(user, org.pk)
    if noted is not None and key in noted:
        return noted[key]
    rows = _ORG_ROLE.rows(user.pk, org.pk)
    role = rows[0][0] if rows else None
    if noted is not None:
        noted[key] = role
    return role


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
# and what the user or their teams were granted on the model, as subqueries: one query says
# what the caller may do. The fetches are prepared (registry.prepared), so the subqueries
# cost their compilation once per connection, and a member's grants no extra round trip.
_ROLE = "_access_role"
_CODENAMES = {
    ModelPermission.VIEW: "view",
    ModelPermission.WRITE: "write",
    ModelPermission.APPROVE: "approve",
}
_GRANTED = {word: f"_access_grant_{word}" for word in _CODENAMES.values()}


def access_annotations(user: UserLike, model_ref: str = "pk", org_ref: str = "org_id") -> dict:
    """The user's role in the model's org and their grants on the model, as subqueries of a
    query over models (default) or over rows that point at one (`model_ref="model_id",
    org_ref="model__org_id"`). Read back with `access_of`."""
    return _access_annotations(user.pk, model_ref, org_ref)


def _access_annotations(user_id: int, model_ref: str = "pk", org_ref: str = "org_id") -> dict:
    role = Membership.objects.filter(user_id=user_id, org_id=OuterRef(org_ref)).values("role")
    annotations = {_ROLE: Subquery(role[:1])}
    teams = get_user_model().groups.through.objects.filter(user_id=user_id).values("group_id")
    for codename, word in _CODENAMES.items():
        by_user = ModelUserPermission.objects.filter(
            user_id=user_id, content_object_id=OuterRef(model_ref), permission__codename=codename
        )
        by_team = ModelGroupPermission.objects.filter(
            group_id__in=teams, content_object_id=OuterRef(model_ref), permission__codename=codename
        )
        annotations[_GRANTED[word]] = ExpressionWrapper(
            Q(Exists(by_user)) | Q(Exists(by_team)), output_field=BooleanField()
        )
    return annotations


def _granted_on(row: object) -> set[str]:
    return {word for word, name in _GRANTED.items() if getattr(row, name)}


def access_of(user: UserLike, row: object, visibility: str) -> "Access":
    """The Access of `user` on a model, from a row fetched with `access_annotations` and
    the model's visibility read in the same query."""
    return access_from(user, getattr(row, _ROLE), visibility, _granted_on(row))


# What a user may do on a model (and their role in an org) is read once per request: the
# fetch helpers note it, and a service's own check in the same request finds it here
# instead of asking the database again. Outside a request (commands, tasks, tests calling
# services) nothing is noted, and every check reads as stored. Any change a service writes
# (it always records an activity event) forgets what was noted, so a request that changes
# who may do what reads afresh.
_NOTED: ContextVar[dict[tuple, "Access | str | None"] | None] = ContextVar(
    "modelvault_access", default=None
)


@contextmanager
def access_noted_per_request() -> Iterator[None]:
    token = _NOTED.set({})
    try:
        yield
    finally:
        _NOTED.reset(token)


def access_forget() -> None:
    noted = _NOTED.get()
    if noted is not None:
        noted.clear()


def _note(user: UserLike, model_id: int, access: "Access") -> "Access":
    noted = _NOTED.get()
    if noted is not None:
        noted[("model", user.pk, model_id)] = access
    return access


def access_from(user: UserLike, role: str | None, visibility: str, grants: set[str]) -> Access:
    """The Access of `user` on a model, from their role in its org, the model's visibility
    and the words (view, write, approve) granted on it to the user or their teams."""
    if not _active(user):
        return Access()
    if user.is_superuser:
        role = Role.ADMIN
    if role is None:
        return Access()
    if role == Role.ADMIN:
        return Access(view=True, write=True, approve=True, admin=True)
    view = bool(grants) or visibility == Visibility.ORGANIZATION
    return Access(view=view, write="write" in grants, approve="approve" in grants)


_VISIBILITY_AND_ACCESS = Prepared(
    lambda model_id, user_id: (
        RegisteredModel.objects.filter(pk=model_id)
        .annotate(**_access_annotations(user_id))
        .values_list("visibility", _ROLE, *_GRANTED.values())
    ),
    int,
    int,
)


def model_access(user: UserLike, model: RegisteredModel) -> Access:
    if not _active(user):
        return Access()
    noted = _NOTED.get()
    if noted is not None and ("model", user.pk, model.pk) in noted:
        return noted[("model", user.pk, model.pk)]
    # As stored, not as the caller's instance says: a model made private a moment ago is
    # private now.
    rows = _VISIBILITY_AND_ACCESS.rows(model.pk, user.pk)
    if not rows:
        return Access()
    visibility, role, *granted = rows[0]
    grants = {word for word, held in zip(_GRANTED, granted, strict=True) if held}
    return _note(user, model.pk, access_from(user, role, visibility, grants))


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


_ORG_BY_SLUG = Prepared(lambda slug: Organization.objects.filter(slug=slug), str)
# The org with the caller's role in it (None for no membership): one round trip for an
# org-level request, where the org and then the role took two.
_ORG_BY_SLUG_WITH_ROLE = Prepared(
    lambda user_id, slug: Organization.objects.filter(slug=slug).annotate(
        caller_role=Subquery(
            Membership.objects.filter(org_id=OuterRef("pk"), user_id=user_id).values("role")[:1]
        )
    ),
    int,
    str,
)


def get_org_for_user(
    user: UserLike, org: str | Organization, need: Literal["member", "admin"] = "member"
) -> Organization:
    if isinstance(org, str):
        noted = _NOTED.get()
        if noted is not None and _active(user) and not user.is_superuser:
            found = _ORG_BY_SLUG_WITH_ROLE.first(user.pk, org)
            if found is not None:  # for require_org below and the rest of the request
                noted[_org_role_key(user, found.pk)] = found.caller_role
        else:
            found = _ORG_BY_SLUG.first(org)
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


_MODEL_FOR_USER = Prepared(
    lambda user_id, slug, name: (
        RegisteredModel.objects.select_related("org", "owner", "created_by")
        .filter(org__slug=slug, name=name)
        .annotate(**_access_annotations(user_id))
    ),
    int,
    str,
    str,
)


def get_model_for_user(
    user: UserLike, org: str | Organization, name: str, need: Need = "view"
) -> RegisteredModel:
    """The model with its org, owner and creator, fetched with the user's role and grants
    in one query: 404 unless the user may view it."""
    return _fetched_model(_MODEL_FOR_USER, user, org, name, need)


def _fetched_model(
    prepared: Prepared, user: UserLike, org: str | Organization, name: str, need: Need, *more
) -> RegisteredModel:
    """The model `prepared` reads for (user, org slug, name, *more), with the user's access
    checked and noted for the rest of the request: 404 before 403."""
    if not _active(user):
        raise NotFound(f"model {name} not found")
    slug = org if isinstance(org, str) else org.slug
    model = prepared.first(user.pk, slug, name, *more)
    if model is None:
        raise NotFound(f"model {name} not found")
    access = access_of(user, model, model.visibility)
    _check(user, model, _note(user, model.pk, access), need)
    return model


# What registering a version reads: the model with its org (not its owner or creator, which
# the new version's answer does not show) and the branch it goes on, joined on its name.
_MODEL_FOR_REGISTRATION = Prepared(
    lambda user_id, slug, name, branch: (
        RegisteredModel.objects.annotate(
            registration_branch=FilteredRelation("branches", condition=Q(branches__name=branch))
        )
        .select_related("org", "registration_branch")
        .filter(org__slug=slug, name=name)
        .annotate(**_access_annotations(user_id))
    ),
    int,
    str,
    str,
    str,
)


def get_model_for_registration(
    user: UserLike, org: str | Organization, name: str, branch: str
) -> tuple[RegisteredModel, Branch | None]:
    """get_model_for_user(..., "write") for registering a version on `branch`, and that
    branch of the model (None when it has none) read in the same query, for version_create
    to take as it is."""
    model = _fetched_model(_MODEL_FOR_REGISTRATION, user, org, name, "write", branch)
    # Django sets the joined branch only when there is one.
    return model, getattr(model, "registration_branch", None)


_MAX_NUMBER = 2**31 - 1  # the column's range: no larger number names a version
_VERSION_FOR_USER = Prepared(
    lambda user_id, slug, name, number: (
        ModelVersion.objects.select_related("model__org", "branch", "created_by")
        .filter(model__org__slug=slug, model__name=name, number=number)
        .annotate(**_access_annotations(user_id, "model_id", "model__org_id"))
    ),
    int,
    str,
    str,
    int,
)


def get_version_for_user(
    user: UserLike,
    org: str | Organization,
    model: str,
    number: int,
    need: Need = "view",
) -> ModelVersion:
    """The version with its model, org, branch and creator, and the user's role and
    grants, in one query."""
    if not _active(user):
        raise NotFound(f"model {model} not found")
    slug = org if isinstance(org, str) else org.slug
    if not 0 < number <= _MAX_NUMBER:
        get_model_for_user(user, org, model, "view")
        raise NotFound(f"version {number} of model {model} not found")
    version = _VERSION_FOR_USER.first(user.pk, slug, model, number)
    if version is None:
        # Which 404: the model's (not viewable, or absent) or the version's.
        get_model_for_user(user, org, model, "view")
        raise NotFound(f"version {number} of model {model} not found")
    access = access_of(user, version, version.model.visibility)
    _check(user, version.model, _note(user, version.model_id, access), need)
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
