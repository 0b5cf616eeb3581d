"""Registered models: create, update, delete, share (SPEC 2, 3.1)."""

import contextlib
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm, remove_perm

from registry import validation
from registry.errors import Conflict, Forbidden, Invalid, Locked, NotFound
from registry.models import (
    Artifact,
    Branch,
    LockLevel,
    Membership,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    ModelVersion,
    Organization,
    RegisteredModel,
    Team,
    VersionParent,
    VersionSequence,
    Visibility,
    Watch,
)
from registry.models.catalog import NAME_PATTERN, closed_versions_of
from registry.permissions import org_and_role_for_user, require, require_org
from registry.services.activity import event_record
from registry.services.blobs import blobs_collect_later

EDITABLE = ("name", "description", "readme", "tags", "visibility", "required_approvals", "owner")
# Who owns governance: sharing, approvals count and ownership are the owner's or an admin's.
GOVERNANCE = ("visibility", "required_approvals", "owner")


def _check_name(name) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise Invalid(
            f"model name {name!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _clean(changes: dict, org: Organization) -> dict:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise Invalid(f"these model fields cannot be set: {unknown}; allowed: {list(EDITABLE)}")
    if "name" in changes:
        _check_name(changes["name"])
    if "description" in changes:
        validation.short_text(changes["description"], "description", 500)
    if "readme" in changes:
        validation.short_text(changes["readme"], "readme", validation.MAX_TEXT)
    if "tags" in changes:
        validation.tags(changes["tags"])
    if "visibility" in changes and changes["visibility"] not in Visibility.values:
        raise Invalid(f"visibility must be one of {Visibility.values}")
    if "required_approvals" in changes:
        value = changes["required_approvals"]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20
        ):
            raise Invalid("required_approvals must be null or a whole number from 1 to 20")
    if (
        changes.get("owner") is not None
        and not Membership.objects.filter(org=org, user=changes["owner"]).exists()
    ):
        raise Invalid(f"the owner must be a member of {org.slug}")
    return changes


def _shown(field: str, value):
    if field == "owner":
        return value.get_username() if value is not None else None
    return value


@contextlib.contextmanager
def _taken_name_is_conflict(org_id: int, name: object, model_id=None) -> Iterator[None]:
    """Around a transaction that gives a model (`model_id`, or a new one) `name`: when a
    concurrent transaction took the name after this one checked it, the unique constraint's
    error (caught once this transaction has rolled back) is the caller's 409, not a server
    error. Any other integrity error stays one."""
    try:
        yield
    except IntegrityError:
        taken = (
            isinstance(name, str)
            and RegisteredModel.objects.filter(org_id=org_id, name=name)
            .exclude(pk=model_id)
            .exists()
        )
        if not taken:
            raise
        slug = Organization.objects.values_list("slug", flat=True).get(pk=org_id)
        raise Conflict(f"model {name} already exists in {slug}") from None


def model_create(
    *,
    actor,
    org: Organization | str,
    name: str,
    description: str = "",
    readme: str = "",
    visibility: str = Visibility.ORGANIZATION,
    tags: dict | None = None,
    required_approvals: int | None = None,
) -> RegisteredModel:
    """Any member registers a model in `org` (an Organization, or its slug: read with the
    actor's role in it, as the check); its creator receives view, write and approve on it,
    and the org's default reviewers (a team, if set) approve, as a `permission.granted`
    event of its own."""
    if isinstance(org, str):
        org, _ = org_and_role_for_user(actor, org, "member")
    else:
        require_org(actor, org, "member")
    with _taken_name_is_conflict(org.pk, name), transaction.atomic():
        return _model_create(
            actor, org, name, description, readme, visibility, tags, required_approvals
        )


def _model_create(
    actor, org, name, description, readme, visibility, tags, required_approvals
) -> RegisteredModel:
    fields = _clean(
        {
            "name": name,
            "description": description,
            "readme": readme,
            "visibility": visibility,
            "tags": tags or {},
            "required_approvals": required_approvals,
        },
        org,
    )
    # A name taken already, or by a concurrent registration, fails the unique constraint:
    # model_create's _taken_name_is_conflict makes that the caller's 409.
    model = RegisteredModel.objects.create(org=org, owner=actor, created_by=actor, **fields)
    VersionSequence.objects.create(model=model)
    Branch.objects.create(model=model, name=Branch.MAIN, protected=True, created_by=actor)
    # What assign_perm would write for each of the three, in one insert: the model is new,
    # so there is nothing to look up first.
    permissions = dict(
        Permission.objects.filter(
            content_type__app_label=RegisteredModel._meta.app_label,
            content_type__model=RegisteredModel._meta.model_name,
            codename__in=list(ModelPermission.values),
        ).values_list("codename", "pk")
    )
    if len(permissions) != len(ModelPermission):
        raise RuntimeError("the model permissions are missing from the database: run migrate")
    ModelUserPermission.objects.bulk_create(
        [
            ModelUserPermission(permission_id=pk, user=actor, content_object=model)
            for pk in permissions.values()
        ]
    )
    event_record(
        actor=actor,
        org=org,
        verb="model.created",
        target=model,
        model=model,
        changes={field: [None, _shown(field, value)] for field, value in fields.items()}
        | {"owner": [None, actor.get_username()]},
    )
    # The org's default reviewers approve: read here, under this transaction, not from the
    # caller's possibly stale instance; granted as model_grant would, by the creator (its
    # owner), with nothing to look up first either.
    group_id, team_name = (
        Organization.objects.filter(pk=org.pk)
        .values_list("default_reviewers__group_id", "default_reviewers__name")
        .get()
    )
    if group_id is not None:
        approve = ModelPermission.APPROVE
        ModelGroupPermission.objects.bulk_create(
            [
                ModelGroupPermission(
                    permission_id=permissions[approve.value],
                    group_id=group_id,
                    content_object=model,
                )
            ]
        )
        event_record(
            actor=actor,
            org=org,
            verb="permission.granted",
            target=model,
            model=model,
            changes={"permission": [None, approve.label]},
            data={"grantee": f"team:{team_name}"},
        )
    return model


def model_update(*, actor, model: RegisteredModel, **changes) -> RegisteredModel:
    name = changes.get("name")
    with _taken_name_is_conflict(model.org_id, name, model.pk), transaction.atomic():
        return _model_update(actor, model, changes)


def _model_update(actor, model: RegisteredModel, changes: dict) -> RegisteredModel:
    access = require(actor, model, "write")
    model = (
        RegisteredModel.objects.select_for_update(no_key=True, of=("self",))
        .select_related("org")
        .get(pk=model.pk)
    )
    _clean(changes, model.org)
    governed = sorted(f for f in changes if f in GOVERNANCE and changes[f] != getattr(model, f))
    if governed and not (access.admin or model.owner_id == actor.pk):
        raise Forbidden(f"changing {', '.join(governed)} needs the model's owner or an org admin")
    renamed = "name" in changes and changes["name"] != model.name
    if renamed and RegisteredModel.objects.filter(org=model.org, name=changes["name"]).exists():
        raise Conflict(f"model {changes['name']} already exists in {model.org.slug}")
    diff = {}
    for field, value in changes.items():
        old = getattr(model, field)
        if old != value:
            diff[field] = [_shown(field, old), _shown(field, value)]
            setattr(model, field, value)
    if not diff:
        return model
    model.save()
    event_record(
        actor=actor, org=model.org, verb="model.updated", target=model, model=model, changes=diff
    )
    return model


@transaction.atomic
def model_delete(*, actor, model: RegisteredModel) -> None:
    """Delete a model and its versions: the owner or an org admin, and only while no
    version is closed (never deleted) or, for non-admins, at redact."""
    access = require(actor, model, "write")
    model = (
        RegisteredModel.objects.select_for_update(of=("self",))
        .select_related("org")
        .get(pk=model.pk)
    )
    if not (access.admin or model.owner_id == actor.pk):
        raise Forbidden("deleting a model needs its owner or an org admin")
    # Lock every version up front: none may be closed or edited while the model goes.
    levels = dict(
        ModelVersion.objects.select_for_update(of=("self",))
        .filter(model=model)
        .order_by("number")
        .values_list("number", "lock_level")
    )
    held = closed_versions_of(RegisteredModel.objects.filter(pk=model.pk))
    if held:
        raise Locked(held)
    redacted = [number for number, level in levels.items() if level == LockLevel.REDACT]
    if redacted and not access.admin:
        raise Locked(
            f"version {redacted[0]} is at lock level redact: only org admins may delete it"
        )
    outside_children = (
        VersionParent.objects.filter(parent__model=model)
        .exclude(child__model=model)
        .select_related("child__model")
        .first()
    )
    if outside_children is not None:
        child = outside_children.child
        raise Conflict(
            f"{child.model.name} v{child.number} descends from this model: delete it first"
        )
    blobs = list(Artifact.objects.filter(version__model=model).values_list("blob_id", flat=True))
    event_record(
        actor=actor,
        org=model.org,
        verb="model.deleted",
        target=model,
        model=model,
        changes={"name": [model.name, None]},
        data={"versions": len(levels)},
    )
    # Links within the model go first, so that RESTRICT sees no lineage left to protect.
    VersionParent.objects.filter(child__model=model).delete()
    model.delete()
    blobs_collect_later(blobs)


def _grantee(model: RegisteredModel, user=None, team: Team | None = None):
    if (user is None) == (team is None):
        raise Invalid("grant to exactly one of a user or a team")
    if team is not None:
        if team.org_id != model.org_id:
            raise Invalid(f"team {team} does not belong to {model.org.slug}")
        return team.group, f"team:{team.name}"
    if not Membership.objects.filter(org=model.org, user=user).exists():
        raise Invalid(f"{user.get_username()} is not a member of {model.org.slug}")
    return user, f"user:{user.get_username()}"


def _check_sharer(actor, model: RegisteredModel) -> None:
    access = require(actor, model, "view")
    # The owner as stored: the caller's instance may predate a change of owner.
    owner = RegisteredModel.objects.filter(pk=model.pk).values_list("owner_id", flat=True)
    if not (access.admin or owner.first() == actor.pk):
        raise Forbidden("sharing a model needs its owner or an org admin")


def _permission(word: str) -> ModelPermission:
    try:
        return ModelPermission.from_word(word)
    except ValueError:
        raise Invalid(f"permission must be one of view, write, approve, not {word!r}") from None


@transaction.atomic
def model_grant(*, actor, model: RegisteredModel, permission: str, user=None, team=None) -> None:
    _check_sharer(actor, model)
    perm = _permission(permission)
    grantee, label = _grantee(model, user, team)
    assign_perm(perm.value, grantee, model)
    event_record(
        actor=actor,
        org=model.org,
        verb="permission.granted",
        target=model,
        model=model,
        changes={"permission": [None, perm.label]},
        data={"grantee": label},
    )


@transaction.atomic
def model_revoke(*, actor, model: RegisteredModel, permission: str, user=None, team=None) -> None:
    """Take a grant back; revoking one that is not held is NotFound, and records nothing."""
    _check_sharer(actor, model)
    perm = _permission(permission)
    if (user is None) == (team is None):
        raise Invalid("revoke from exactly one of a user or a team")
    if team is not None:
        grantee, label = team.group, f"team:{team.name}"
        held = ModelGroupPermission.objects.filter(group=team.group)
    else:
        grantee, label = user, f"user:{user.get_username()}"
        held = ModelUserPermission.objects.filter(user=user)
    if not held.filter(content_object=model, permission__codename=perm.value).exists():
        raise NotFound(f"{label.partition(':')[2]} holds no {perm.label} grant on {model.name}")
    remove_perm(perm.value, grantee, model)
    event_record(
        actor=actor,
        org=model.org,
        verb="permission.revoked",
        target=model,
        model=model,
        changes={"permission": [perm.label, None]},
        data={"grantee": label},
    )


def model_watch(*, actor, model: RegisteredModel) -> Watch:
    require(actor, model, "view")
    watch, _ = Watch.objects.get_or_create(model=model, user=actor)
    return watch


def model_unwatch(*, actor, model: RegisteredModel) -> None:
    require(actor, model, "view")
    Watch.objects.filter(model=model, user=actor).delete()


def user_by_name(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user {username} not found")
    return user
