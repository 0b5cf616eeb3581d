"""The audit history's own row writer (registry.history) against simple-history's: the same
row, column for column, for every audited model."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from simple_history.models import HistoricalRecords

from registry.history import AUDITED

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def demo(settings, tmp_path):
    """The demo org, with a team and a flag besides (which the seed does not make)."""
    from django.contrib.auth import get_user_model

    from registry.models import ModelVersion, Organization
    from registry.services.flags import flag_raise
    from registry.services.orgs import team_create

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    call_command("seed_demo", verbosity=0)
    org = Organization.objects.get(slug="acme")
    admin = get_user_model().objects.get(username="admin")
    team_create(actor=admin, org=org, name="reviewers")
    version = ModelVersion.objects.filter(model__org=org).order_by("pk").first()
    flag_raise(actor=admin, version=version, severity="high", summary="drift on <b>fr</b>")


def written(history_model, before: set[int]) -> list[dict]:
    rows = history_model.objects.exclude(history_id__in=before).order_by("history_id").values()
    return [{**row, "history_id": None} for row in rows]


@pytest.mark.parametrize("history_type", ["+", "~", "-"])
def test_it_writes_the_row_simple_history_writes(demo, history_type, subtests):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert len(AUDITED) == 12  # every audited model of the registry and the approvals
    for model, audited in AUDITED.items():
        with subtests.test(model=model.__name__):
            instance = model._base_manager.order_by("pk").first()
            assert instance is not None, f"the demo has no {model.__name__}"
            instance._history_date = WHEN
            instance._history_user = admin
            instance._change_reason = "checked against simple-history"
            history_model = audited._history_model
            before = set(history_model.objects.values_list("history_id", flat=True))
            audited.create_historical_record(instance, history_type)
            HistoricalRecords.create_historical_record(audited, instance, history_type)
            fast, stock = written(history_model, before)
            assert fast == stock
            assert (fast["history_type"], fast["history_user_id"]) == (history_type, admin.pk)
            assert fast["history_change_reason"] == "checked against simple-history"


def test_it_records_the_requests_user_and_no_user_outside_a_request(model, alice):
    from registry.services.versions import version_create

    version = version_create(actor=alice, model=model)
    row = version.history.get()
    assert (row.history_type, row.history_user_id, row.number) == ("+", None, 1)
    assert row.tags == version.tags and row.digest == version.digest
