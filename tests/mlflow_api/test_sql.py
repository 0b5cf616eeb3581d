"""mlflow_api/sql.py: each statement answers what its querysets answer (on SQLite and on
PostgreSQL, as the suite runs twice)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Subquery

from approvals.models import RequestKind, StageChangeRequest
from approvals.services import alias_request_create, request_approve, request_create
from mlflow_api import sql
from registry.models import Alias, ModelVersion, RegisteredModel, Stage
from registry.services.aliases import alias_protect, alias_set
from registry.services.orgs import membership_set
from registry.services.registered_models import model_create
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    """Three models: stages several times over, aliases (one protected, with a pending
    move), pending stage requests (one per version at most), descriptions, tags and a
    source, a model and a version whose creator is gone, and a model with nothing."""
    alice, admin = cast.alice, cast.admin
    fraud = model_create(actor=alice, org=cast.acme, name="fraud", tags={"team": "risk"})
    churn = model_create(actor=alice, org=cast.acme, name="churn", description="Who leaves")
    model_create(actor=alice, org=cast.acme, name="empty")
    versions = [version_create(actor=alice, model=fraud) for _ in range(4)]
    versions.append(
        version_create(
            actor=alice,
            model=fraud,
            description="Retrained",
            tags={"mlflow.run_id": "r1", "k": "v"},
            source_run="s3://bucket/fraud/5",
        )
    )
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
    gone = get_user_model().objects.create_user("gone")
    membership_set(actor=admin, org=cast.acme, user=gone, role="admin")
    orphan = model_create(actor=gone, org=cast.acme, name="orphan")
    version_create(actor=gone, model=orphan)
    gone.delete()
    return cast


def _shown_version(version: ModelVersion) -> sql.ShownVersion:
    """What the querysets say of `version`."""
    aliases = Alias.objects.filter(version=version).order_by("name")
    pending = (
        StageChangeRequest.objects.pending()
        .filter(kind=RequestKind.STAGE, version=version)
        .order_by("pk")
        .first()
    )
    return sql.ShownVersion(
        id=version.pk,
        model_id=version.model_id,
        model_name=version.model.name,
        number=version.number,
        stage=version.stage,
        lock_level=version.lock_level,
        description=version.description,
        tags=version.tags,
        source_run=version.source_run,
        created_at=version.created_at,
        updated_at=version.updated_at,
        creator=version.created_by.username if version.created_by else "",
        pending_request=(pending.pk, pending.to_stage) if pending else None,
        aliases=list(aliases.values_list("name", flat=True)),
    )


def _versions():
    return ModelVersion.objects.select_related("model", "created_by")


def test_versions_are_the_querysets(world):
    expected = [_shown_version(v) for v in _versions().order_by("model__name", "number")]
    ids = [v.id for v in expected]
    assert sql.versions([uuid.uuid4(), *ids]) == expected  # in the order asked
    assert sql.versions(ids[::-1]) == expected[::-1]
    found = {v.model_name: v for v in expected if v.aliases or v.pending_request}
    assert found["churn"].aliases == ["champion"]
    assert found["churn"].pending_request[1] == Stage.STAGING
    assert {v.creator for v in expected} == {"alice", ""}
    assert sql.versions([]) == []


def test_latest_versions_are_the_querysets(world):
    ids = [*world.acme.models.values_list("pk", flat=True), 10**9]
    newest = (
        ModelVersion.objects.filter(model=OuterRef("model"), stage=OuterRef("stage"))
        .order_by("-number")
        .values("number")[:1]
    )
    expected = _versions().filter(model_id__in=ids, number=Subquery(newest))
    found = sql.latest_versions(ids)
    assert found == [_shown_version(v) for v in expected.order_by("model_id", "-number")]
    fraud = {v.number: v.stage for v in found if v.model_name == "fraud"}
    assert fraud == {5: Stage.UNASSIGNED, 4: Stage.STAGING, 3: Stage.PRODUCTION}
    assert sql.latest_versions([]) == []


def test_a_page_of_a_models_versions_is_the_querysets(world):
    fraud = RegisteredModel.objects.get(name="fraud")
    newest_first = _versions().filter(model=fraud).order_by("-number")
    for offset, limit in [(0, 10), (0, 2), (2, 2), (4, 2), (5, 2)]:
        expected = [_shown_version(v) for v in newest_first[offset : offset + limit]]
        assert sql.model_versions(fraud.pk, offset, limit) == expected
    assert [v.number for v in sql.model_versions(fraud.pk, 1, 3)] == [4, 3, 2]
    assert sql.model_versions(10**9, 0, 10) == []


def test_an_aliased_version_is_the_querysets(world):
    for alias in Alias.objects.select_related("version__model", "version__created_by"):
        found = sql.aliased_version(alias.model_id, alias.name)
        assert found == _shown_version(alias.version)
    fraud = RegisteredModel.objects.get(name="fraud")
    assert sql.aliased_version(fraud.pk, "champion").aliases == ["beta", "champion"]
    assert sql.aliased_version(fraud.pk, "nothing") is None


def test_models_are_the_querysets(world):
    models = RegisteredModel.objects.select_related("created_by").order_by("name")
    latest = sql.latest_versions([m.pk for m in models])
    expected = []
    for model in models:
        aliases = Alias.objects.filter(model=model).select_related("version").order_by("name")
        expected.append(
            sql.ShownModel(
                id=model.pk,
                name=model.name,
                description=model.description,
                tags=model.tags,
                created_at=model.created_at,
                updated_at=model.updated_at,
                creator=model.created_by.username if model.created_by else "",
                aliases=[(a.name, a.version.number) for a in aliases],
                latest_versions=[v for v in latest if v.model_id == model.pk],
            )
        )
    ids = [m.id for m in expected]
    assert sql.models([10**9, *ids]) == expected  # in the order asked
    assert sql.models(ids[::-1]) == expected[::-1]
    assert len(expected) == 4 and {m.creator for m in expected} == {"alice", ""}
    assert sql.models([]) == []
