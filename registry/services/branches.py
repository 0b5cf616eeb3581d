"""Branches of a model and promotion to main (SPEC 3.6).

Versions are registered on a branch; only versions on a protected branch may enter
production (approvals.services checks it when a request is made and again when it applies).
Promoting an experimental version registers a new version on `main` whose only parent is
the experimental one and whose artifacts point at the same blobs: no byte is copied.
"""

from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from registry import validation
from registry.errors import Conflict, Invalid, NotFound
from registry.models import (
    INGREDIENT_FIELDS,
    Artifact,
    Blob,
    Branch,
    ModelVersion,
    RegisteredModel,
)
from registry.models.catalog import NAME_PATTERN
from registry.permissions import require
from registry.services.activity import event_record
from registry.services.locks import lock_model_transitions
from registry.services.versions import (
    _clean_ingredients,
    _create_row,
    locked_version,
    main_branch_with_default,
)
from registry.storage import StagedUpload


def clean_branch_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise Invalid(
            f"branch name {name!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@transaction.atomic
def branch_create(*, actor, model: RegisteredModel, name: str) -> Branch:
    """Open an experimental branch (write permission). New branches are unprotected: their
    versions cannot enter production until promoted to main or the branch is protected."""
    require(actor, model, "write")
    name = clean_branch_name(name)
    if Branch.objects.filter(model=model, name=name).exists():
        raise Conflict(f"branch {name} already exists on model {model.name}")
    try:
        with transaction.atomic():
            branch = Branch.objects.create(model=model, name=name, created_by=actor)
    except IntegrityError:
        # A concurrent creation of the same name won the unique constraint.
        raise Conflict(f"branch {name} already exists on model {model.name}") from None
    event_record(
        actor=actor,
        org=model.org,
        verb="branch.created",
        target=branch,
        target_type="branch",
        model=model,
        changes={"name": [None, name], "protected": [None, False]},
    )
    return branch


@transaction.atomic
def branch_set_protection(*, actor, branch: Branch, protected: bool) -> Branch:
    """Protect or release a branch: org admins only. `main` stays protected.

    Taken under the model's transition lock, the lock every approval takes before it
    applies, so a stage change either lands before the release or sees the branch released
    (and then refuses production).
    """
    if not isinstance(protected, bool):
        raise Invalid("protected must be true or false")
    model = RegisteredModel.objects.select_related("org").filter(pk=branch.model_id).first()
    if model is None:
        raise NotFound(f"branch {branch.name} not found")
    require(actor, model, "admin")
    lock_model_transitions(model)
    branch = Branch.objects.select_for_update().filter(pk=branch.pk).first()
    if branch is None:
        raise NotFound(f"branch of model {model.name} not found")
    branch.model = model
    if branch.protected == protected:
        return branch
    if branch.name == Branch.MAIN and not protected:
        raise Invalid(
            "main is always protected: promoted versions enter production from it; protect "
            "another branch instead of releasing main"
        )
    branch.protected = protected
    branch.save(update_fields=["protected"])
    event_record(
        actor=actor,
        org=model.org,
        verb="settings.changed",
        target=branch,
        target_type="branch",
        model=model,
        changes={"protected": [not protected, protected]},
        data={"branch": branch.name},
    )
    return branch


def _shared(blob: Blob) -> StagedUpload:
    """An existing blob in the shape version_create attaches. The row is locked and present,
    so blob_attach takes it as it is and never reads this path nor writes to storage."""
    return StagedUpload(path=Path("/nonexistent-promoted-blob"), sha256=blob.sha256, size=blob.size)


@transaction.atomic
def version_promote(
    *,
    actor,
    version: ModelVersion,
    label: str | None = None,
    description: str | None = None,
) -> ModelVersion:
    """Register `version` (on an experimental branch) anew on main: same ingredients, free
    metadata and files, its only parent the experimental version. Artifacts are new rows on
    the same blobs. Numbering, lock level default and digest are version_create's own.

    Lock order as version_delete's: the model's transition lock (the number sequence), the
    source version's row, then the blob rows, then the activity chain.
    """
    source = ModelVersion.objects.select_related("model__org").filter(pk=version.pk).first()
    if source is None:
        raise NotFound(f"version {version.number} not found")
    model = source.model
    require(actor, model, "write")
    lock_model_transitions(model)
    source = locked_version(source)
    if source.branch.name == Branch.MAIN:
        raise Invalid(
            f"version {source.number} of {model.name} is already on main: only versions of "
            "other branches are promoted"
        )
    if description is None:
        description = source.description
    main = main_branch_with_default(model)
    values = _clean_ingredients({field: getattr(source, field) for field in INGREDIENT_FIELDS})
    free = {
        "description": validation.short_text(description, "description", validation.MAX_TEXT),
        "readme": source.readme,
        "tags": dict(source.tags),
    }
    artifacts = list(
        Artifact.objects.filter(version=source).order_by("path").values_list("path", "blob_id")
    )
    # Locked here so that no collection removes a blob between this read and the new rows.
    blobs = Blob.objects.select_for_update().in_bulk([blob_id for _, blob_id in artifacts])
    staged = {path: _shared(blobs[blob_id]) for path, blob_id in artifacts}
    placed: list[str] = []
    promoted = _create_row(
        actor,
        model,
        main.org_default_lock_level,
        Branch.MAIN,
        main,
        label,
        values,
        free,
        [source],
        staged,
        placed,
    )
    if placed:  # never: every blob was locked above and exists
        raise RuntimeError("promotion wrote blob bytes; it must share them")
    event_record(
        actor=actor,
        org=model.org,
        verb="branch.promoted",
        target=promoted,
        version=promoted,
        changes={
            "branch": [source.branch.name, Branch.MAIN],
            "number": [source.number, promoted.number],
        },
        data={
            "from": {"number": source.number, "id": str(source.pk), "branch": source.branch.name},
            "to": {"number": promoted.number, "id": str(promoted.pk), "branch": Branch.MAIN},
            "artifacts": [path for path, _ in artifacts],
        },
    )
    return promoted
