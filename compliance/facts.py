"""What the document shows about a version, read in a fixed number of queries whatever the
number of events, requests, flags or versions."""

from dataclasses import dataclass

from django.db.models import Prefetch

from approvals.models import Review, StageChangeRequest
from registry.models import (
    ActivityEvent,
    Artifact,
    Flag,
    ModelVersion,
    Organization,
    RegisteredModel,
)

HISTORY_COLUMNS = ("number", "label", "digest", "stage", "lock_level", "created_at")


@dataclass(frozen=True)
class Facts:
    """Everything the document shows, fetched once."""

    version: ModelVersion
    model: RegisteredModel
    org: Organization
    artifacts: list[Artifact]
    parents: list[ModelVersion]
    children: list[ModelVersion]
    history: list[ModelVersion]
    previous: ModelVersion | None
    events: list[ActivityEvent]
    requests: list[StageChangeRequest]
    flags: list[Flag]


def fetch(version: ModelVersion, viewer) -> Facts:
    """One query per kind of row, whatever their number (the prefetches run only when
    there is something to prefetch)."""
    version = ModelVersion.objects.select_related(
        "model__org", "model__owner", "branch", "created_by"
    ).get(pk=version.pk)
    model = version.model
    visible = RegisteredModel.objects.visible_to(viewer)
    lineage = ("model__name", "number")
    reviews = Prefetch("reviews", queryset=Review.objects.select_related("reviewer"))
    return Facts(
        version=version,
        model=model,
        org=model.org,
        artifacts=list(Artifact.objects.filter(version=version).select_related("blob")),
        parents=list(
            version.parents.filter(model__in=visible).select_related("model").order_by(*lineage)
        ),
        children=list(
            version.children.filter(model__in=visible).select_related("model").order_by(*lineage)
        ),
        history=list(
            ModelVersion.objects.filter(model=model, number__lte=version.number)
            .select_related("branch", "created_by")
            .only(*HISTORY_COLUMNS, "branch__name", "created_by__username")
            .order_by("number")
        ),
        previous=ModelVersion.objects.filter(
            model=model, branch=version.branch, number__lt=version.number
        )
        .prefetch_related("artifacts")
        .order_by("-number")
        .first(),
        events=list(ActivityEvent.objects.filter(version_id=version.pk).order_by("seq")),
        requests=list(
            StageChangeRequest.objects.filter(version=version)
            .select_related("requester")
            .prefetch_related(reviews)
            .order_by("created_at", "id")
        ),
        flags=list(Flag.objects.filter(version=version).open().select_related("raised_by")),
    )
