"""mlflow_api/sql.py: each statement answers what its queryset answers (on SQLite and on
PostgreSQL, as the suite runs twice)."""

import pytest
from django.db.models import OuterRef, Subquery

from approvals.models import RequestKind, StageChangeRequest
from approvals.services import alias_request_create, request_approve, request_create
from mlflow_api import sql
from registry.models import Alias, ModelVersion, Stage
from registry.services.aliases import alias_protect, alias_set
from registry.services.registered_models import model_create
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    """Three models: stages several times over, aliases (one protected, with a pending
    move), pending stage requests (one per version at most), and a model with nothing."""
    alice, admin = cast.alice, cast.admin
    fraud = model_create(actor=alice, org=cast.acme, name="fraud")
    churn = model_create(actor=alice, org=cast.acme, name="churn")
    model_create(actor=alice, org=cast.acme, name="empty")
    versions = [version_create(actor=alice, model=fraud) for _ in range(5)]
    stages = ["staging", "staging", "production", "staging"]
    for version, stage in zip(versions[:4], stages, strict=True):
        request = request_create(actor=alice, version=version, to_stage=stage)
        request_approve(actor=admin, request=request)
    request_create(actor=alice, version=versions[4], to_stage=Stage.STAGING)  # pending
    alias_set(actor=alice, model=fraud, name="champion", version=versions[2])
    alias_set(actor=alice, model=fraud, name="beta", version=versions[2])
    alias_set(actor=alice, model=fraud, name="canary", version=versions[4])
    alias_protect(actor=admin, model=fraud, name="champion")
    alias_request_create(actor=alice, model=fraud, name="champion", version=versions[3])
    other = version_create(actor=alice, model=churn)
    alias_set(actor=alice, model=churn, name="champion", version=other)
    request_create(actor=alice, version=other, to_stage=Stage.STAGING)
    return cast


def test_model_aliases_are_the_querysets(world):
    ids = [*world.acme.models.values_list("pk", flat=True), 10**9]
    expected: dict[int, list] = {}
    for alias in Alias.objects.filter(model_id__in=ids).select_related("version"):
        expected.setdefault(alias.model_id, []).append((alias.name, alias.version.number))
    assert dict(sql.model_aliases(ids)) == {k: sorted(v) for k, v in expected.items()}
    assert len(expected) == 2 and sql.model_aliases([]) == {}


def test_latest_versions_are_the_querysets(world):
    ids = list(world.acme.models.values_list("pk", flat=True))
    newest = (
        ModelVersion.objects.filter(model=OuterRef("model"), stage=OuterRef("stage"))
        .order_by("-number")
        .values("number")[:1]
    )
    expected = ModelVersion.objects.filter(model_id__in=ids, number=Subquery(newest))
    found = sql.latest_version_ids(ids)
    assert sorted(found) == sorted(expected.values_list("pk", flat=True))
    fraud = {
        v.number: v.stage for v in ModelVersion.objects.filter(pk__in=found, model__name="fraud")
    }
    assert fraud == {3: Stage.PRODUCTION, 4: Stage.STAGING, 5: Stage.UNASSIGNED}
    assert sql.latest_version_ids([]) == []


def test_version_aliases_and_pending_requests_are_the_querysets(world):
    ids = list(ModelVersion.objects.values_list("pk", flat=True))
    aliases: dict = {}
    for alias in Alias.objects.filter(version_id__in=ids).order_by("name"):
        aliases.setdefault(alias.version_id, []).append(alias.name)
    assert dict(sql.version_aliases(ids)) == aliases
    pending: dict = {}
    requests = StageChangeRequest.objects.pending().filter(
        kind=RequestKind.STAGE, version_id__in=ids
    )
    for request in requests.order_by("pk"):
        pending.setdefault(request.version_id, (request.pk, request.to_stage))
    assert sql.pending_stage_requests(ids) == pending
    assert len(pending) == 2  # the alias move waiting on champion is not a stage request
    assert StageChangeRequest.objects.pending().exclude(kind=RequestKind.STAGE).exists()
    assert sql.version_aliases([]) == {} and sql.pending_stage_requests([]) == {}
