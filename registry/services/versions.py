"""Model versions: register, edit, lock, delete (SPEC 2, 3.2, 3.5)."""

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.db import IntegrityError, transaction
from django.db.models import F

from registry import sql, validation
from registry.digest import compute_digest, digest_of, manifest
from registry.errors import Conflict, Forbidden, Invalid, Locked, NotFound
from registry.models import (
    FREE_METADATA_FIELDS,
    INGREDIENT_FIELDS,
    Alias,
    Artifact,
    Branch,
    LockLevel,
    ModelVersion,
    Organization,
    RegisteredModel,
    VersionParent,
)
from registry.models.versions import SEMVER_PATTERN
from registry.permissions import (
    Access,
    get_model_for_registration,
    model_access,
    require,
)
from registry.services.activity import event_record
from registry.services.aliases import alias_change
from registry.services.blobs import blob_attach, blobs_collect_later
from registry.services.locks import lock_model_transitions
from registry.storage import StagedUpload, remove_blob_bytes, staged_upload

EDITABLE = (*FREE_METADATA_FIELDS, *INGREDIENT_FIELDS, "parents")
_NOT_HERE = {
    "stage": "the stage changes only through an approved stage change request",
    "lock_level": "the lock level changes through version_set_lock_level",
    "digest": "the digest is derived from the ingredients",
    "number": "version numbers are given by the registry",
    "branch": "a version's branch never changes; promote it to register it on main",
    "model": "a version's model never changes",
    "created_by": "the creator is recorded by the registry",
    "created_at": "the creation time is recorded by the registry",
    "id": "the id is given by the registry",
}


@dataclass(frozen=True)
class Upload:
    """An artifact to store: a file-like object or an iterable of bytes, and optionally the
    SHA-256 the client expects it to have."""

    source: BinaryIO | Iterable[bytes]
    sha256: str | None = None


def require_unlocked(version: ModelVersion, access: Access, action: str) -> None:
    """The lock rule for ingredients, artifacts and deletion (SPEC 3.2)."""
    where = f"version {version.number} of {version.model.name}"
    if version.lock_level == LockLevel.CLOSED:
        raise Locked(
            f"{where} is closed: nobody may {action}, not even an admin; register a new version"
        )
    if version.lock_level == LockLevel.REDACT and not access.admin:
        raise Locked(f"{where} is at lock level redact: only org admins may {action}")


def _clean_label(model: RegisteredModel, label: Any, exclude_pk=None) -> str:
    if not isinstance(label, str) or not SEMVER_PATTERN.match(label) or len(label) > 128:
        raise Invalid(f"label {label!r} is not a semantic version such as 1.4.0 or 2.0.0-rc.1")
    taken = ModelVersion.objects.filter(model=model, label=label).exclude(pk=exclude_pk)
    if taken.exists():
        raise Conflict(f"label {label} is already used by another version of {model.name}")
    return label


def _clean_ingredients(values: Mapping[str, Any]) -> dict[str, Any]:
    return {field: validation.INGREDIENT_VALIDATORS[field](v) for field, v in values.items()}


def _clean_parents(actor, model: RegisteredModel, parents: Any) -> list[ModelVersion]:
    if not isinstance(parents, (list, tuple)):
        raise Invalid("parents must be a list of versions")
    found: dict[Any, ModelVersion] = {}
    for parent in parents:
        if not isinstance(parent, ModelVersion):
            raise Invalid("parents must be versions")
        fresh = ModelVersion.objects.select_related("model__org").filter(pk=parent.pk).first()
        if (
            fresh is None
            or fresh.model.org_id != model.org_id
            or not model_access(actor, fresh.model).view
        ):
            raise NotFound("parent version not found")
        found[fresh.pk] = fresh
    return list(found.values())


def _refuse_not_editable(fields: Iterable[str]) -> None:
    for field in fields:
        if field in _NOT_HERE:
            raise Invalid(f"{field} cannot be set: {_NOT_HERE[field]}")
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise Invalid(f"unknown version fields {unknown}")


def _stage_all(
    stack: contextlib.ExitStack, artifacts: Mapping[str, Any]
) -> dict[str, StagedUpload]:
    staged = {}
    for path, item in artifacts.items():
        validation.artifact_path(path)
        upload = item if isinstance(item, Upload) else Upload(item)
        staged[path] = stack.enter_context(
            staged_upload(upload.source, expected_sha256=upload.sha256)
        )
    return staged


def version_create(
    *, actor, model: RegisteredModel, branch: str | Branch = Branch.MAIN, **fields: Any
) -> ModelVersion:
    """Register a version of `model` on `branch` (a name, or a Branch of `model` that the
    caller read together with the model and its org): see _register for `fields`. The
    actor's access is read here (registry.permissions.require)."""
    return _register(actor, model, require(actor, model, "write"), branch, **fields)


def version_register(
    *, actor, org: str | Organization, model: str, branch: str = Branch.MAIN, **fields: Any
) -> ModelVersion:
    """version_create for the model named `model` of `org`, read with its org, the branch
    and the actor's access in one statement (get_model_for_registration): how a surface
    that names the model registers, with the access read once."""
    found, found_branch, access = get_model_for_registration(actor, org, model, branch)
    return _register(actor, found, access, found_branch or branch, **fields)


def _register(
    actor,
    model: RegisteredModel,
    access: Access,
    branch: str | Branch,
    *,
    lock_level: str | None = None,
    label: str | None = None,
    description: str = "",
    readme: str = "",
    tags: dict | None = None,
    parents: list[ModelVersion] | None = None,
    artifacts: Mapping[str, Upload | BinaryIO | Iterable[bytes]] | None = None,
    **ingredients: Any,
) -> ModelVersion:
    """Register a version with its number taken under a row lock (never reused, no gaps
    under concurrency), at `lock_level` or the org default; artifacts given here are stored
    in the same transaction, so a version can be born closed with its files. `access` is
    the actor's on `model`, who may write it.

    `branch` is a branch name, or a Branch of `model` read together with the model and its
    org: then the org's default level is taken from that same read."""
    _refuse_not_editable(ingredients)
    if isinstance(branch, Branch):
        if branch.model_id != model.pk:
            raise Invalid(f"branch {branch.name} is not a branch of model {model.name}")
        found, branch, default_level = branch, branch.name, model.org.default_lock_level
    else:
        # The branch, and the org's default level as stored (not as the caller's possibly
        # stale instance holds it), in one read. Branches go only with their model, whose
        # deletion the sequence's row lock orders against this registration.
        found = _branch_with_default(model, branch)
        if found is None:
            default_level = Organization.objects.values_list("default_lock_level", flat=True).get(
                pk=model.org_id
            )
        else:
            default_level = found.org_default_lock_level
    level = lock_level or default_level
    if level not in LockLevel.values:
        raise Invalid(f"lock_level must be one of {LockLevel.values}")
    if LockLevel.rank(level) < LockLevel.rank(default_level) and not access.admin:
        raise Forbidden(
            f"creating a version at lock level {level}, below the organization's default "
            f"{default_level}, counts as lowering: org admins only"
        )
    values = {field: ingredients.get(field, _default(field)) for field in INGREDIENT_FIELDS}
    values = _clean_ingredients(values)
    free = {
        "description": validation.short_text(description, "description", validation.MAX_TEXT),
        "readme": validation.short_text(readme, "readme", validation.MAX_TEXT),
        "tags": validation.tags(tags or {}),
    }
    with contextlib.ExitStack() as stack:
        staged = _stage_all(stack, artifacts or {})
        placed: list[str] = []
        try:
            with transaction.atomic():
                version = _create_row(
                    actor, model, level, branch, found, label, values, free, parents, staged, placed
                )
        except BaseException:
            for sha256 in placed:
                remove_blob_bytes(sha256)
            raise
    return version


def _default(field: str) -> Any:
    return ModelVersion._meta.get_field(field).get_default()


def _branch_with_default(model: RegisteredModel, name: str) -> Branch | None:
    """The model's branch `name`, annotated with the org's default lock level as stored."""
    # order_by(): Branch's default ordering would join the model and org tables for nothing.
    return (
        Branch.objects.filter(model=model, name=name)
        .annotate(org_default_lock_level=F("model__org__default_lock_level"))
        .order_by()
        .first()
    )


def main_branch_with_default(model: RegisteredModel) -> Branch:
    """The model's main branch, annotated with the org's default lock level as stored."""
    return _branch_with_default(model, Branch.MAIN)


def _create_row(
    actor, model, level, branch_name, branch, label, values, free, parents, staged, placed
):
    if branch is None:
        raise Invalid(f"branch {branch_name} does not exist on model {model.name}")
    if label is not None:
        label = _clean_label(model, label)
    parent_versions = _clean_parents(actor, model, parents or [])
    number = sql.next_version_number(model.pk)  # under the sequence's row lock till commit
    if number is None:
        raise NotFound(f"model {model.name} not found")  # deleted since it was read
    blobs = {}
    for path, upload in staged.items():
        blob, wrote = blob_attach(upload)
        if wrote:
            placed.append(blob.sha256)
        blobs[path] = blob
    digest = digest_of(
        manifest(
            values,
            [(path, blob.sha256, blob.size) for path, blob in blobs.items()],
            [p.digest for p in parent_versions],
        )
    )
    # A label may be taken by a concurrent registration: only then is the insert wrapped in
    # a savepoint, to tell that conflict from a defect.
    try:
        with transaction.atomic() if label is not None else contextlib.nullcontext():
            version = ModelVersion.objects.create(
                model=model,
                number=number,
                label=label,
                digest=digest,
                branch=branch,
                lock_level=level,
                created_by=actor,
                **values,
                **free,
            )
    except IntegrityError:
        # Only a label taken by a concurrent registration is the caller's conflict; any
        # other integrity error is a defect and stays one.
        if label is not None and ModelVersion.objects.filter(model=model, label=label).exists():
            raise Conflict(
                f"label {label} is already used by another version of {model.name}"
            ) from None
        raise
    # A version may be born closed with its files and parents: these rows are part of its
    # birth, in its creating transaction, so they bypass the guards that freeze a closed one.
    if parent_versions:
        VersionParent._base_manager.bulk_create(
            [VersionParent(child=version, parent=parent) for parent in parent_versions]
        )
    if blobs:
        Artifact._base_manager.bulk_create(
            [
                Artifact(version=version, path=path, blob=blob, created_by=actor)
                for path, blob in blobs.items()
            ]
        )
    changes = {
        "number": [None, version.number],
        "lock_level": [None, level],
        "branch": [None, branch.name],
        "digest": [None, digest],
    }
    if label is not None:
        changes["label"] = [None, label]
    event_record(
        actor=actor,
        org=model.org,
        verb="version.created",
        target=version,
        version=version,
        changes=changes,
        data={
            "artifacts": sorted(blobs),
            "parents": [f"{p.model.name} v{p.number}" for p in parent_versions],
        },
    )
    return version


def locked_version(version: ModelVersion, *, for_delete: bool = False) -> ModelVersion:
    """The version re-read and row-locked, for a service about to change it.

    Only the version's own row is locked (of="self"), never its model or org. An update
    takes a no-key lock, so other transactions may still insert rows that reference the
    version (their foreign-key check takes a key-share lock); a deletion takes the full lock
    up front, so that it never waits for those while holding the activity chain.
    """
    fresh = (
        ModelVersion.objects.select_for_update(no_key=not for_delete, of=("self",))
        .select_related("model__org", "branch")
        .filter(pk=version.pk)
        .first()
    )
    if fresh is None:
        raise NotFound(f"version {version.number} not found")
    return fresh


@transaction.atomic
def version_update(*, actor, version: ModelVersion, **changes: Any) -> ModelVersion:
    """Edit free metadata (any lock level, write users) and ingredients (lock rules apply);
    a changed ingredient gives a new digest."""
    _refuse_not_editable(changes)
    version = locked_version(version)
    access = require(actor, version.model, "write")
    diff: dict[str, list[Any]] = {}
    if "label" in changes and changes["label"] != version.label:
        if version.label is not None:
            raise Invalid(f"version {version.number}'s label {version.label} is immutable once set")
        if changes["label"] is not None:
            _clean_label(version.model, changes["label"], exclude_pk=version.pk)
    for field, validate in (
        ("description", lambda v: validation.short_text(v, "description", validation.MAX_TEXT)),
        ("readme", lambda v: validation.short_text(v, "readme", validation.MAX_TEXT)),
        ("tags", validation.tags),
    ):
        if field in changes:
            validate(changes[field])
    ingredients = _clean_ingredients({f: changes[f] for f in INGREDIENT_FIELDS if f in changes})
    changed_ingredients = [f for f, v in ingredients.items() if getattr(version, f) != v]
    new_parents = None
    if "parents" in changes:
        new_parents = _clean_parents(actor, version.model, changes["parents"])
        if any(p.pk == version.pk for p in new_parents):
            raise Invalid("a version cannot be its own parent")
        old_ids = set(
            VersionParent.objects.filter(child=version).values_list("parent_id", flat=True)
        )
        if {p.pk for p in new_parents} != old_ids:
            changed_ingredients.append("parents")
            diff["parents"] = [
                sorted(str(i) for i in old_ids),
                sorted(str(p.pk) for p in new_parents),
            ]
        else:
            new_parents = None
    if changed_ingredients:
        require_unlocked(
            version, access, f"change its ingredients ({', '.join(changed_ingredients)})"
        )
    for field in (*FREE_METADATA_FIELDS, *INGREDIENT_FIELDS):
        if field in changes and getattr(version, field) != changes[field]:
            diff[field] = [getattr(version, field), changes[field]]
            setattr(version, field, changes[field])
    if not diff:
        return version
    if new_parents is not None:
        VersionParent.objects.filter(child=version).delete()
        VersionParent.objects.bulk_create(
            [VersionParent(child=version, parent=p) for p in new_parents]
        )
    if changed_ingredients:
        old_digest = version.digest
        version.digest = compute_digest(version)
        if version.digest != old_digest:
            diff["digest"] = [old_digest, version.digest]
    version.save()
    event_record(
        actor=actor,
        org=version.model.org,
        verb="version.updated",
        target=version,
        version=version,
        changes=diff,
    )
    return version


@transaction.atomic
def version_set_lock_level(*, actor, version: ModelVersion, level: str) -> ModelVersion:
    """Raise (any write user) or lower (org admins; never a closed version in compliance
    mode) a version's lock level."""
    if level not in LockLevel.values:
        raise Invalid(f"lock level must be one of {LockLevel.values}, not {level!r}")
    version = locked_version(version)
    access = require(actor, version.model, "write")
    old = version.lock_level
    if level == old:
        return version
    lowering = LockLevel.rank(level) < LockLevel.rank(old)
    if lowering:
        if old == LockLevel.CLOSED and version.model.org.closed_is_final:
            raise Locked(
                f"version {version.number} is closed and the organization is in compliance "
                "mode: a closed version can never be lowered, by anyone"
            )
        if not access.admin:
            raise Forbidden(f"lowering a lock level ({old} to {level}) needs an org admin")
    version.lock_level = level
    version.save(update_fields=["lock_level", "updated_at"])
    event_record(
        actor=actor,
        org=version.model.org,
        verb="lock.lowered" if lowering else "lock.raised",
        target=version,
        version=version,
        changes={"lock_level": [old, level]},
        data={"number": version.number},
    )
    return version


@transaction.atomic
def version_delete(*, actor, version: ModelVersion) -> None:
    """Delete a version (lock rules apply). Unprotected aliases on it are removed with their
    own events; a protected alias must be moved first, as it would be to move it anywhere."""
    lock_model_transitions(version.model)  # first, as every stage and alias change does
    version = locked_version(version, for_delete=True)
    access = require(actor, version.model, "write")
    require_unlocked(version, access, "delete it")
    child = VersionParent.objects.filter(parent=version).select_related("child__model").first()
    if child is not None:
        raise Conflict(
            f"{child.child.model.name} v{child.child.number} descends from version "
            f"{version.number}: it cannot be deleted"
        )
    aliases = list(Alias.objects.filter(version=version).order_by("name"))
    protected = [alias.name for alias in aliases if alias.protected]
    if protected:
        raise Conflict(
            f"protected alias {', '.join(protected)} points at version {version.number}: move "
            "it first (an org admin, or an approved request)"
        )
    for alias in aliases:
        alias.version = version  # as alias_current reads it: with its version
        _, event = alias_change(
            actor=actor, model=version.model, name=alias.name, current=alias, version=None
        )
        event_record(**event)
    blobs = list(version.artifacts.values_list("blob_id", flat=True))
    event_record(
        actor=actor,
        org=version.model.org,
        verb="version.deleted",
        target=version,
        version=version,
        changes={"number": [version.number, None], "digest": [version.digest, None]},
        data={"artifacts": sorted(version.artifacts.values_list("path", flat=True))},
    )
    version.delete()
    blobs_collect_later(blobs)
