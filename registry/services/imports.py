"""What an import from another registry records (`manage.py import_mlflow`,
docs/mlflow.md): the stage a version had there, and one `model.imported` event per model.
Only an org admin imports: the stage is set without a request or a review, because none
happened here, and its `stage.applied` event says so (`data.imported`)."""

from typing import Any

from django.db import transaction

from registry.errors import Invalid
from registry.models import ActivityEvent, ModelVersion, RegisteredModel, Stage
from registry.permissions import require_org
from registry.services.activity import event_record
from registry.services.locks import lock_model_transitions

IMPORTED_VERB = "model.imported"


@transaction.atomic
def stage_import(*, actor, version: ModelVersion, stage: str, data: dict[str, Any]) -> ModelVersion:
    """Set the stage `version` had in the registry it comes from; `data` (its origin) goes
    into the event. Nothing is recorded when the version is in that stage already."""
    model = version.model
    require_org(actor, model.org, "admin")
    if stage not in Stage.values:
        raise Invalid(f"stage must be one of {Stage.values}")
    lock_model_transitions(model)
    fresh = ModelVersion.objects.select_for_update(of=("self",)).get(pk=version.pk)
    if fresh.stage == stage:
        return fresh
    old = fresh.stage
    fresh.stage = stage
    fresh.save(update_fields=["stage", "updated_at"])
    event_record(
        actor=actor,
        org=model.org,
        verb="stage.applied",
        target=fresh,
        model=model,
        version=fresh,
        changes={"stage": [old, stage]},
        data={**data, "number": fresh.number, "imported": True},
    )
    return fresh


def model_was_imported(model: RegisteredModel) -> bool:
    return ActivityEvent.objects.filter(model=model, verb=IMPORTED_VERB).exists()


@transaction.atomic
def model_imported(*, actor, model: RegisteredModel, data: dict[str, Any]) -> ActivityEvent:
    """The one `model.imported` event of an import run that changed `model`."""
    require_org(actor, model.org, "admin")
    return event_record(
        actor=actor, org=model.org, verb=IMPORTED_VERB, target=model, model=model, data=data
    )
