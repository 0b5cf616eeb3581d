"""Who may do what to a model (SPEC 3.1), and fetch helpers that say 404 before 403.

Org admins (and superusers) hold view, write and approve on every model of their org. Others
hold what was granted to them or their teams; with visibility=organization every member views.
access_from decides it for one model; lists filter with RegisteredModel.objects.visible_to,
which a test holds to the same answer.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from registry import sql
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import (
    Branch,
    ModelVersion,
    Organization,
    RegisteredModel,
    Role,
    Visibility,
)
from registry.models.catalog import confined_away, is_acting, role_in

Need = Literal["view", "write", "approve", "admin"]
UserLike = AbstractBaseUser | AnonymousUser
T = TypeVar("T")


@dataclass(frozen=True)
class Access:
    view: bool = False
    write: bool = False
    approve: bool = False
    admin: bool = False

    def allows(self, need: Need) -> bool:
        return getattr(self, need)


def access_from(user: UserLike, role: str | None, visibility: str, grants: set[str]) -> Access:
    """The Access of `user` on a model, from their membership's role in its org (None for
    none), the model's visibility and the words (view, write, approve) granted on it to the
    user or their teams."""
    if not is_acting(user):
        return Access()
    if user.is_superuser:
        role = Role.ADMIN
    if role is None:
        return Access()
    if role == Role.ADMIN:
        return Access(view=True, write=True, approve=True, admin=True)
    view = bool(grants) or visibility == Visibility.ORGANIZATION
    return Access(view=view, write="write" in grants, approve="approve" in grants)


def org_role(user: UserLike, org: Organization) -> str | None:
    return role_in(user, org)


def is_org_admin(user: UserLike, org: Organization) -> bool:
    return org_role(user, org) == Role.ADMIN


# A fetch of a model (or of a version with its model) reads, in the same statement, what
# access_from needs: the caller's role in the model's org and the words granted on the model
# to them or their teams (registry.sql). tests/registry/test_visibility.py holds the access
# of every fetch helper to the lists' filters (visible_to, granted_to) and to the permission
# querysets, for every kind of grant.


def access_of(user: UserLike, model: RegisteredModel, role: str | None, bits: int) -> Access:
    """The Access of `user` on `model` from a fetch's role and grant bits (registry.sql.BITS,
    read in the fetch's own statement). A user who may not act has none, and neither has a
    token bound to another org than the model's, superuser or not."""
    if not is_acting(user) or confined_away(user, model.org_id):
        return Access()
    return access_from(user, role, model.visibility, _grants(bits))


def _grants(bits: int) -> set[str]:
    return {word for word, bit in sql.BITS.items() if bits & bit}


def model_access(user: UserLike, model: RegisteredModel) -> Access:
    if not is_acting(user) or confined_away(user, model.org_id):
        return Access()
    # As stored, not as the caller's instance says: a model made private a moment ago is
    # private now.
    stored = sql.model_access(user.pk, model.pk)
    if stored is None:
        return Access()
    visibility, role, bits = stored
    return access_from(user, role, visibility, _grants(bits))


def members_access(model: RegisteredModel) -> list[tuple[Any, Access]]:
    """The active members of the model's org by id, each with their access on it, their
    roles and grants read in one query (model_access for each, but for the model's
    visibility: as `model` holds it)."""
    return [
        (user, access_of(user, model, role, bits))
        for user, role, bits in sql.members_with_access(model.org_id, model.pk)
    ]


def _need_message(need: Need, model: RegisteredModel) -> str:
    if need == "admin":
        return f"this needs an org admin of {model.org.slug}"
    return f"you do not have {need} permission on model {model.name}"


def check_access(model: RegisteredModel, access: Access, need: Need) -> None:
    """NotFound when `access` (the user's on `model`) may not view it, Forbidden when it
    may not `need`."""
    if not access.view:
        raise NotFound(f"model {model.name} not found")
    if not access.allows(need):
        raise Forbidden(_need_message(need, model))


def require(user: UserLike, model: RegisteredModel, need: Need) -> Access:
    """NotFound when the user may not view the model, Forbidden when they may not `need`."""
    access = model_access(user, model)
    check_access(model, access, need)
    return access


def _check_org(org: Organization, role: str | None, need: Literal["member", "admin"]) -> None:
    if role is None:
        raise NotFound(f"organization {org.slug} not found")
    if need == "admin" and role != Role.ADMIN:
        raise Forbidden(f"this needs an org admin of {org.slug}")


def require_org(user: UserLike, org: Organization, need: Literal["member", "admin"]) -> str:
    role = org_role(user, org)
    _check_org(org, role, need)
    return role


def org_and_role_for_user(
    user: UserLike, slug: str, need: Literal["member", "admin"] = "member"
) -> tuple[Organization, str]:
    """The org `slug` and the user's role in it, read in one query: NotFound unless they
    are a member (an admin for need="admin")."""
    found = sql.org_with_role(user.pk, slug)
    if found is None:
        raise NotFound(f"organization {slug} not found")
    org, role = found
    if not is_acting(user) or confined_away(user, org.pk):
        role = None
    elif user.is_superuser:
        role = Role.ADMIN
    _check_org(org, role, need)
    return org, role


def get_org_for_user(
    user: UserLike, org: str | Organization, need: Literal["member", "admin"] = "member"
) -> Organization:
    if not isinstance(org, str):
        require_org(user, org, need)
        return org
    return org_and_role_for_user(user, org, need)[0]


def _slug(org: str | Organization) -> str:
    return org if isinstance(org, str) else org.slug


def _fetch_model(
    user: UserLike, org: str | Organization, name: str, branch: str | None = None
) -> tuple[RegisteredModel, Access, Branch | None]:
    """The model `name` of `org` with its org, owner and creator, and the user's access on
    it read in the same query: NotFound unless they may view it. With `branch`, that branch
    of the model (None when it has none) instead of the owner and creator."""
    found = sql.model_with_access(user.pk, _slug(org), name, branch) if is_acting(user) else None
    model, access = _viewable(user, name, None if found is None else found[:3])
    return model, access, found[3]


def _viewable(
    user: UserLike, name: str, found: tuple[RegisteredModel, str | None, int] | None
) -> tuple[RegisteredModel, Access]:
    """The model of a read of it with the user's role and grant bits (None: no model
    `name`) and the user's access on it: NotFound unless they may view it."""
    if found is None:
        raise NotFound(f"model {name} not found")
    model, role, bits = found
    access = access_of(user, model, role, bits)
    check_access(model, access, "view")
    return model, access


def get_model_for_user(
    user: UserLike, org: str | Organization, name: str, need: Need = "view"
) -> RegisteredModel:
    """The model with its org, owner and creator, fetched with the user's role and grants
    in one query: 404 unless the user may view it."""
    model, access, _ = _fetch_model(user, org, name)
    check_access(model, access, need)
    return model


def read_with_model(
    user: UserLike,
    org: str | Organization,
    name: str,
    read: Callable[[int, str, str], tuple[tuple[RegisteredModel, str | None, int] | None, T]],
) -> T:
    """What `read(user id, org slug, name)` read of the model `name` of `org` beside the
    user's access on it, once they may view the model: NotFound otherwise, as
    get_model_for_user says. `read` answers (the model, at least its name, org and
    visibility; the user's role in its org; the grant bits), as sql.model_with_access reads
    them (None when there is no such model), and what else it read in the same statement (a
    page of the model's versions: api.sql)."""
    if not is_acting(user):
        raise NotFound(f"model {name} not found")
    found, more = read(user.pk, _slug(org), name)
    _viewable(user, name, found)
    return more


def get_model_for_registration(
    user: UserLike, org: str | Organization, name: str, branch: str
) -> tuple[RegisteredModel, Branch | None, Access]:
    """get_model_for_user(..., "write") for registering a version on `branch`, with that
    branch of the model (None when it has none) and the user's access, read in the same
    query (registry.services.versions.version_register). The owner and creator are not
    read: the new version does not show them."""
    model, access, found_branch = _fetch_model(user, org, name, branch)
    check_access(model, access, "write")
    return model, found_branch, access


def stored_version(user: UserLike, version_id: Any) -> tuple[ModelVersion, Access] | None:
    """The version `version_id` as stored, with its model, org, branch and creator, and the
    user's access on its model, read in one query; None when it is gone. A service that
    locked the model's transitions re-reads its version so, and checks the access itself."""
    found = sql.version_by_id_with_access(user.pk, version_id)
    if found is None:
        return None
    version, role, bits = found
    access = access_of(user, version.model, role, bits)
    return version, access


_MAX_NUMBER = 2**31 - 1  # the column's range: no larger number names a version


def get_version_for_user(
    user: UserLike,
    org: str | Organization,
    model: str,
    number: int,
    need: Need = "view",
) -> ModelVersion:
    """The version with its model, org, branch and creator, and the user's role and
    grants, in one query."""
    found = None
    if is_acting(user) and 0 < number <= _MAX_NUMBER:
        found = sql.version_with_access(user.pk, _slug(org), model, number)
    return _checked_version(user, org, model, found, f"version {number}", need)


def read_with_version(
    user: UserLike,
    org: str | Organization,
    name: str,
    read: Callable[..., tuple[tuple[ModelVersion, str | None, int] | None, T]],
    *,
    number: int | None = None,
    alias: str | None = None,
) -> T:
    """What `read(user id, org slug, name, number=number, alias=alias)` read of version
    `number` of the model `name` of `org`, or of the version its alias `alias` points at,
    beside the user's access on its model, once they may view it: NotFound otherwise, as
    get_version_for_user and get_version_by_ref say. `read` answers (the version, at least
    its id and its model's name, org and visibility; the user's role in the org; the grant
    bits), as sql.version_with_access reads them (None when there is no such version), and
    what else it read in the same statement (the version as a page shows it: api.sql)."""
    found, more = None, None
    if is_acting(user) and (alias is not None or 0 < number <= _MAX_NUMBER):
        found, more = read(user.pk, _slug(org), name, number=number, alias=alias)
    missing = f"version {number}" if alias is None else f"alias {alias}"
    _checked_version(user, org, name, found, missing, "view")
    return more


def _checked_version(
    user: UserLike,
    org: str | Organization,
    model: str,
    found: tuple[ModelVersion, str | None, int] | None,
    missing: str,
    need: Need,
) -> ModelVersion:
    """The version of a read of it with the user's role and grant bits on its model (None:
    not found, or not read for a user who is not acting), once the user may `need` on its
    model."""
    if found is None:
        # Which 404: the model's (not viewable, or absent, or no acting user: get_model_for_user
        # reads nothing for one) or the version's.
        get_model_for_user(user, org, model, "view")
        raise NotFound(f"{missing} of model {model} not found")
    version, role, bits = found
    check_access(version.model, access_of(user, version.model, role, bits), need)
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
    found = None
    if is_acting(user):
        found = sql.version_by_alias_with_access(user.pk, _slug(org), name, alias)
    return _checked_version(user, org, name, found, f"alias {alias}", need)
