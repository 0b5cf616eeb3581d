"""Stage changes through peer review (SPEC 3.3, 3.4), and protected aliases through the same
workflow: request, approve or reject, apply, cancel.

Lock order, the same in every service here, so that no two transactions wait on each other
in a cycle: the model's transition lock (registry.services.locks.lock_model_transitions),
then the request row, then the version rows that change, then the activity chain head
(event_record, always last).
"""

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import sql
from approvals.models import (
    Decision,
    RequestKind,
    RequestStatus,
    Review,
    StageChangeRequest,
    stage_moves_back,
    stage_skips,
)
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import Alias, ModelVersion, RegisteredModel, Stage
from registry.permissions import Access, access_of, check_access, require, stored_version
from registry.services.activity import event_record
from registry.services.aliases import (
    alias_change,
    alias_current,
    clean_alias_name,
    clean_comment,
    version_for_alias,
)
from registry.services.locks import lock_model_transitions


def _fresh_version(actor, version: ModelVersion, need: str) -> ModelVersion:
    """The version as stored, with its model, org and branch, read with the actor's access
    (registry.permissions.stored_version) under the model's transition lock: NotFound when
    it is gone or the actor may not view its model, Forbidden when they may not `need`."""
    found = stored_version(actor, version.pk)
    if found is None:
        raise NotFound(f"version {version.number} not found")
    fresh, access = found
    check_access(fresh.model, access, need)
    return fresh


def _describe(request: StageChangeRequest) -> dict[str, Any]:
    """What every event about a request carries, so the log reads without the request row."""
    data: dict[str, Any] = {
        "request": request.pk,
        "kind": request.kind,
        "number": request.version.number,
    }
    if request.kind == RequestKind.STAGE:
        data.update(
            from_stage=request.from_stage,
            to_stage=request.to_stage,
            archive_existing=request.archive_existing,
            skips=request.skips,
            moves_back=request.moves_back,
        )
    else:
        data.update(
            alias=request.alias_name,
            from_number=request.alias_from.number if request.alias_from else None,
        )
    return data


def _request_event(
    actor, request: StageChangeRequest, verb: str, changes: dict | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "actor": actor,
        "org": request.model.org,
        "verb": verb,
        "target": request,
        "target_type": "stage_request",
        "model": request.model,
        "version": request.version,
        "changes": changes or {},
        "data": {**_describe(request), **data},
    }


def _file(request: StageChangeRequest, what: str) -> StageChangeRequest:
    """Insert a new request and record its stage.requested event (a stage change's or an
    alias's alike: its reviewers are asked from that event)."""
    # The caller checked under the model's transition lock that there is no pending request;
    # the partial unique constraints are the backstop, and end the transaction.
    try:
        request.save(force_insert=True)
    except IntegrityError:
        raise Conflict(f"{what} already has a pending request") from None
    event_record(
        **_request_event(
            request.requester,
            request,
            "stage.requested",
            {"status": [None, RequestStatus.PENDING]},
            comment=request.comment,
            required_approvals=request.required_approvals,
        )
    )
    return request


@transaction.atomic
def request_create(
    *,
    actor,
    version: ModelVersion,
    to_stage: str,
    comment: str = "",
    archive_existing: bool = False,
) -> StageChangeRequest:
    """Request a version's stage change (write permission). At most one pending request per
    version; `archive_existing` only for production; only versions on a protected branch
    enter production. Records whether the change skips a step or moves back."""
    # The caller's version names the model (a version never moves): its transitions are
    # locked, then the version and the actor's access are read as stored, and checked first.
    lock_model_transitions(version.model)
    version = _fresh_version(actor, version, "write")
    if to_stage not in Stage.values:
        raise Invalid(f"stage must be one of {Stage.values}, not {to_stage!r}")
    if not isinstance(archive_existing, bool):
        raise Invalid("archive_existing must be true or false")
    if archive_existing and to_stage != Stage.PRODUCTION:
        raise Invalid("archive_existing applies only to a request for production")
    comment = clean_comment(comment)
    model = version.model
    where = f"version {version.number} of {model.name}"
    if version.stage == to_stage:
        raise Invalid(f"{where} is already in {to_stage}")
    if to_stage == Stage.PRODUCTION and not version.branch.protected:
        raise Invalid(
            f"{where} is on branch {version.branch.name}, which is not protected: only "
            "versions on a protected branch may enter production; promote it to main first"
        )
    pending = StageChangeRequest.objects.pending().filter(version=version, kind=RequestKind.STAGE)
    pending = pending.first()
    if pending is not None:
        raise Conflict(
            f"{where} already has a pending request (#{pending.pk}, {pending.from_stage} → "
            f"{pending.to_stage}): cancel it or wait for its review before asking again"
        )
    return _file(
        StageChangeRequest(
            kind=RequestKind.STAGE,
            model=model,
            version=version,
            from_stage=version.stage,
            to_stage=to_stage,
            archive_existing=archive_existing,
            skips=stage_skips(version.stage, to_stage),
            moves_back=stage_moves_back(version.stage, to_stage),
            comment=comment,
            requester=actor,
            required_approvals=model.effective_required_approvals,
        ),
        where,
    )


@transaction.atomic
def alias_request_create(
    *,
    actor,
    model: RegisteredModel,
    name: str,
    version: ModelVersion | None,
    comment: str = "",
) -> StageChangeRequest:
    """Request that alias `name` point at `version` (None: be removed), for review like a
    stage change: the way a writer moves a protected alias. One pending request per alias."""
    if version is None:
        require(actor, model, "write")
    else:
        version, _ = version_for_alias(actor, model, version)
    name = clean_alias_name(name)
    comment = clean_comment(comment)
    lock_model_transitions(model)
    current = alias_current(model, name)
    if version is None:
        if current is None:
            raise NotFound(f"alias {name} of model {model.name} not found")
        kind, target = RequestKind.ALIAS_REMOVE, current.version
    else:
        if current is not None and current.version_id == version.pk:
            raise Invalid(f"alias {name} already points at version {version.number}")
        kind, target = RequestKind.ALIAS_MOVE, version
    pending = StageChangeRequest.objects.pending().filter(model=model, alias_name=name)
    pending = pending.exclude(kind=RequestKind.STAGE).first()
    if pending is not None:
        raise Conflict(
            f"alias {name} of {model.name} already has a pending request (#{pending.pk}): "
            "cancel it or wait for its review before asking again"
        )
    return _file(
        StageChangeRequest(
            kind=kind,
            model=model,
            version=target,
            alias_name=name,
            alias_from=current.version if current is not None else None,
            comment=comment,
            requester=actor,
            required_approvals=model.effective_required_approvals,
        ),
        f"alias {name} of {model.name}",
    )


def _locked_request(
    actor, request: StageChangeRequest | int, need: str
) -> tuple[StageChangeRequest, Access]:
    """The request (an instance, or its id) re-read under the model's transition lock and
    its own row lock, after checking that the actor may view the model (else NotFound, as
    for a request that does not exist) and `need` it (else Forbidden)."""
    pk = request if isinstance(request, int) else request.pk
    found = sql.request_model_with_access(actor.pk, pk)
    if found is None:
        raise NotFound(f"request #{pk} not found")
    model, role, bits = found
    access = access_of(actor, model, role, bits)
    if not access.view:
        raise NotFound(f"request #{pk} not found")
    check_access(model, access, need)
    lock_model_transitions(model)
    locked = sql.request_locked(pk, model)  # with the model as read above: it never moves
    if locked is None:
        raise NotFound(f"request #{pk} not found")
    return locked, access


def _require_pending(request: StageChangeRequest, action: str) -> None:
    if request.status != RequestStatus.PENDING:
        raise Conflict(
            f"request #{request.pk} is {request.status}: only a pending request can be {action}"
        )


def _close(request: StageChangeRequest, status: str) -> None:
    """Move a request, read pending under its row lock, out of pending. Of two transactions
    that would close one request, the second reads it only once the first has committed
    (the row lock on PostgreSQL, SQLite's one writer at a time), and finds it decided."""
    _require_pending(request, "decided")
    request.status, request.decided_at = status, timezone.now()
    request.save(update_fields=["status", "decided_at"])


def _refuse_stale(request: StageChangeRequest) -> None:
    """A request decided on a state that has changed since must be asked again."""
    version = request.version
    if request.kind == RequestKind.STAGE:
        if version.stage != request.from_stage:
            raise Conflict(
                f"version {version.number} is now in {version.stage}, not {request.from_stage} "
                f"as when request #{request.pk} was made: the request is stale; cancel it and "
                "request again"
            )
        if request.to_stage == Stage.PRODUCTION and not version.branch.protected:
            raise Conflict(
                f"version {version.number} is no longer on a protected branch: it cannot "
                "enter production"
            )
        return
    current = (
        Alias.objects.filter(model_id=request.model_id, name=request.alias_name)
        .values_list("version_id", flat=True)
        .first()
    )
    if current != request.alias_from_id:
        raise Conflict(
            f"alias {request.alias_name} has changed since request #{request.pk} was made: "
            "the request is stale; cancel it and request again"
        )


def request_approve(
    *, actor, request: StageChangeRequest | int, comment: str = ""
) -> StageChangeRequest:
    """Approve (approve permission; never one's own request; each reviewer once). The
    approval that reaches the required number applies the change in the same transaction.

    Two reviewers approving at once yield one transition: the model's transition lock and
    the request's row lock make them queue (PostgreSQL), and the conditional update out of
    pending lets only one apply (any backend); the other gets Conflict.
    """
    return _review(actor=actor, request=request, decision=Decision.APPROVE, comment=comment)


def request_reject(
    *, actor, request: StageChangeRequest | int, comment: str = ""
) -> StageChangeRequest:
    """Reject (approve permission; never one's own request): a rejection closes the request."""
    return _review(actor=actor, request=request, decision=Decision.REJECT, comment=comment)


@transaction.atomic
def _review(*, actor, request: StageChangeRequest | int, decision: str, comment: str):
    request, _ = _locked_request(actor, request, "approve")
    comment = clean_comment(comment)
    if request.requester_id is not None and request.requester_id == actor.pk:
        raise Forbidden("you cannot review your own request; cancel it if it is no longer wanted")
    _require_pending(request, "reviewed")
    # Read under the request's row lock: no review of it can come in until this one commits.
    reviews = list(Review.objects.filter(request=request).values_list("reviewer_id", "decision"))
    if any(reviewer_id == actor.pk for reviewer_id, _ in reviews):
        raise Conflict(f"you have already reviewed request #{request.pk}")
    _refuse_stale(request)
    try:
        Review.objects.create(request=request, reviewer=actor, decision=decision, comment=comment)
    except IntegrityError:  # the unique constraint behind the lock; the transaction ends here
        raise Conflict(f"you have already reviewed request #{request.pk}") from None
    events: list[dict[str, Any]] = []
    if decision == Decision.REJECT:
        _close(request, RequestStatus.REJECTED)
        events.append(
            _request_event(
                actor,
                request,
                "stage.rejected",
                {"status": [RequestStatus.PENDING, RequestStatus.REJECTED]},
                comment=comment,
            )
        )
    else:
        approvals = 1 + sum(1 for _, made in reviews if made == Decision.APPROVE)
        applies = approvals >= request.required_approvals
        events.append(
            _request_event(
                actor,
                request,
                "stage.approved",
                {"approvals": [approvals - 1, approvals]},
                comment=comment,
                required_approvals=request.required_approvals,
            )
        )
        if applies:
            _close(request, RequestStatus.APPROVED)
            events.extend(_apply(actor, request))
    for event in events:
        event_record(**event)
    return request


def _lock_versions(model: RegisteredModel, **filters: Any) -> list[ModelVersion]:
    """The versions of `model` (with its org, as the caller read it) matching `filters`,
    locked, by number."""
    versions = list(
        ModelVersion.objects.select_for_update()
        .filter(model_id=model.pk, **filters)
        .order_by("number")
    )
    for version in versions:
        version.model = model
    return versions


def _move_stage(actor, request: StageChangeRequest, version: ModelVersion, stage: str, **data):
    old = version.stage
    version.stage = stage
    version.save(update_fields=["stage", "updated_at"])
    return {
        "actor": actor,
        "org": version.model.org,
        "verb": "stage.applied",
        "target": version,
        "version": version,
        "changes": {"stage": [old, stage]},
        "data": {"request": request.pk, "number": version.number, **data},
    }


def _apply(actor, request: StageChangeRequest) -> list[dict[str, Any]]:
    """The change takes effect: rows change here, the caller records the events returned."""
    if request.kind != RequestKind.STAGE:
        target = request.version if request.kind == RequestKind.ALIAS_MOVE else None
        _, event = alias_change(
            actor=actor,
            model=request.model,
            name=request.alias_name,
            current=alias_current(request.model, request.alias_name),
            version=target,
            data={"request": request.pk, "comment": request.comment},
        )
        return [event]
    [version] = _lock_versions(request.model, pk=request.version_id)
    events = [_move_stage(actor, request, version, request.to_stage, comment=request.comment)]
    moved = [version]
    if request.archive_existing:
        others = _lock_versions(request.model, stage=Stage.PRODUCTION)
        for other in [other for other in others if other.pk != version.pk]:
            events.append(
                _move_stage(
                    actor,
                    request,
                    other,
                    Stage.ARCHIVED,
                    archived_for=version.number,
                    comment=request.comment,
                )
            )
            moved.append(other)
    # Requests decided on the old stage of a version that moved no longer make sense. The
    # requested version has no other (one pending stage request per version, and new ones
    # wait on the transition lock): only the versions archived for it are looked at.
    archived = moved[1:]
    if not archived:
        return events
    stale = (
        StageChangeRequest.objects.select_for_update(of=("self",))
        .select_related("version")
        .filter(kind=RequestKind.STAGE, status=RequestStatus.PENDING, version__in=archived)
        .order_by("pk")
    )
    for other in stale:
        other.model = request.model  # the same model, with its org
        _close(other, RequestStatus.SUPERSEDED)
        events.append(
            _request_event(
                actor,
                other,
                "stage.superseded",
                {"status": [RequestStatus.PENDING, RequestStatus.SUPERSEDED]},
                superseded_by=request.pk,
                comment=request.comment,
            )
        )
    return events


@transaction.atomic
def request_cancel(
    *, actor, request: StageChangeRequest | int, comment: str = ""
) -> StageChangeRequest:
    """Cancel a pending request: its requester, or an org admin."""
    request, access = _locked_request(actor, request, "view")
    comment = clean_comment(comment)
    if request.requester_id != actor.pk and not access.admin:
        raise Forbidden(f"only the requester or an org admin may cancel request #{request.pk}")
    _require_pending(request, "cancelled")
    _close(request, RequestStatus.CANCELLED)
    event_record(
        **_request_event(
            actor,
            request,
            "stage.cancelled",
            {"status": [RequestStatus.PENDING, RequestStatus.CANCELLED]},
            comment=comment,
        )
    )
    return request
