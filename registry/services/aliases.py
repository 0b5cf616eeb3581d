"""Aliases: movable named pointers to versions (SPEC 2).

Anyone with `write` sets, moves and removes an alias; a protected one only an org admin,
or an approved request (approvals.services.alias_request_create), which applies the move
through `alias_change` below. Every change is an `alias.set|moved|removed` event.
"""

from typing import Any

from django.db import IntegrityError, transaction

from registry import validation
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.models.catalog import NAME_PATTERN
from registry.permissions import Access, check_access, require, stored_version
from registry.services.activity import event_record
from registry.services.locks import lock_model_transitions

MAX_COMMENT = 20_000


def clean_alias_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise Invalid(
            f"alias name {name!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name.isdigit():
        raise Invalid(f"alias name {name!r} is a number, which would read as a version number")
    return name


def clean_comment(comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise Invalid("a comment must be text")
    if len(comment) > MAX_COMMENT:
        raise Invalid(f"a comment is at most {MAX_COMMENT} characters")
    return validation.storable("comment", comment).strip()


def _version_of(model: RegisteredModel, version: ModelVersion) -> ModelVersion:
    """The version as stored, refusing one of another model."""
    if not isinstance(version, ModelVersion):
        raise Invalid("an alias points at a version")
    fresh = ModelVersion.objects.select_related("model__org").filter(pk=version.pk).first()
    if fresh is None:
        raise NotFound(f"version {version.number} of model {model.name} not found")
    if fresh.model_id != model.pk:
        raise Invalid(
            f"{fresh.model.name} v{fresh.number} is not a version of {model.name}: an alias "
            "points at a version of its own model"
        )
    return fresh


def version_for_alias(
    actor, model: RegisteredModel, version: ModelVersion
) -> tuple[ModelVersion, Access]:
    """The version as stored, a version of `model`, and the actor's access on `model`, who
    must be able to write it: require(actor, model, "write"), then _version_of, with the
    version and the access read in one query when it is one of the model's."""
    found = stored_version(actor, version.pk) if isinstance(version, ModelVersion) else None
    if found is None or found[0].model_id != model.pk:
        # Gone, or another model's: the model's access answers first, then _version_of.
        access = require(actor, model, "write")
        return _version_of(model, version), access
    fresh, access = found
    check_access(model, access, "write")
    return fresh, access


def alias_current(model: RegisteredModel, name: str) -> Alias | None:
    """The model's alias `name` with its version, or None: what alias_change is given, read
    under lock_model_transitions."""
    return Alias.objects.select_related("version").filter(model=model, name=name).first()


def alias_change(
    *,
    actor,
    model: RegisteredModel,
    name: str,
    current: Alias | None,
    version: ModelVersion | None,
    data: dict[str, Any] | None = None,
) -> tuple[Alias | None, dict[str, Any]]:
    """Point `name` (now `current`, with its version, as alias_current reads it) at
    `version` (None: remove it) and return the alias and the event to record. For callers
    that hold lock_model_transitions and have authorised the change."""
    alias = current
    old = alias.version.number if alias is not None else None
    if version is None:
        if alias is None:
            raise NotFound(f"alias {name} of model {model.name} not found")
        removed = Alias(
            pk=alias.pk, model=model, name=name, version=alias.version, protected=alias.protected
        )
        alias.delete()
        verb, target, alias, event_version = "alias.removed", removed, None, removed.version
    else:
        if alias is None:
            # The transition lock keeps out a concurrent setter; the unique constraint is the
            # backstop, and ends the transaction.
            try:
                alias = Alias.objects.create(
                    model=model, name=name, version=version, created_by=actor
                )
            except IntegrityError:
                raise Conflict(f"alias {name} of model {model.name} was just set") from None
            verb = "alias.set"
        else:
            alias.version = version
            alias.save()
            verb = "alias.moved"
        target, event_version = alias, version
    event = {
        "actor": actor,
        "org": model.org,
        "verb": verb,
        "target": target,
        "target_type": "alias",
        "model": model,
        "version": event_version,
        "changes": {"version": [old, None if version is None else version.number]},
        "data": {"alias": name, "protected": target.protected, **(data or {})},
    }
    return alias, event


def _check_protection(actor, model: RegisteredModel, alias: Alias | None, admin: bool) -> None:
    if alias is not None and alias.protected and not admin:
        raise Forbidden(
            f"alias {alias.name} of {model.name} is protected: request the change for review, "
            "or ask an org admin"
        )


@transaction.atomic
def alias_set(
    *, actor, model: RegisteredModel, name: str, version: ModelVersion, comment: str = ""
) -> Alias:
    """Create an alias or move it to `version` (write permission). A protected alias moves
    only by an org admin; others are told to request the move."""
    version, access = version_for_alias(actor, model, version)
    name = clean_alias_name(name)
    comment = clean_comment(comment)
    lock_model_transitions(model)
    current = alias_current(model, name)
    _check_protection(actor, model, current, access.admin)
    if current is not None and current.version_id == version.pk:
        return current
    alias, event = alias_change(
        actor=actor,
        model=model,
        name=name,
        current=current,
        version=version,
        data={"comment": comment},
    )
    event_record(**event)
    return alias


@transaction.atomic
def alias_remove(*, actor, model: RegisteredModel, name: str, comment: str = "") -> None:
    """Remove an alias (write permission; a protected one only an org admin)."""
    access = require(actor, model, "write")
    comment = clean_comment(comment)
    lock_model_transitions(model)
    current = alias_current(model, name)
    if current is None:
        raise NotFound(f"alias {name} of model {model.name} not found")
    _check_protection(actor, model, current, access.admin)
    _, event = alias_change(
        actor=actor,
        model=model,
        name=name,
        current=current,
        version=None,
        data={"comment": comment},
    )
    event_record(**event)


@transaction.atomic
def alias_protect(*, actor, model: RegisteredModel, name: str, protected: bool = True) -> Alias:
    """Protect (or release) an alias: org admins only."""
    require(actor, model, "admin")
    if not isinstance(protected, bool):
        raise Invalid("protected must be true or false")
    lock_model_transitions(model)
    alias = Alias.objects.select_related("version").filter(model=model, name=name).first()
    if alias is None:
        raise NotFound(f"alias {name} of model {model.name} not found")
    if alias.protected == protected:
        return alias
    alias.protected = protected
    alias.save()
    event_record(
        actor=actor,
        org=model.org,
        verb="alias.protected" if protected else "alias.unprotected",
        target=alias,
        target_type="alias",
        model=model,
        version=alias.version,
        changes={"protected": [not protected, protected]},
        data={"alias": name},
    )
    return alias
