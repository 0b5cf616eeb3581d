"""registry.services.imports: the only way a stage is set without a review is an org admin's
import, and its event says so."""

import pytest

from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Stage
from registry.services.imports import model_imported, model_was_imported, stage_import
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


def test_an_admin_imports_a_stage_recorded_as_imported(model, alice, admin):
    version = version_create(actor=alice, model=model)
    done = stage_import(actor=admin, version=version, stage=Stage.PRODUCTION, data={"from": "x"})
    assert done.stage == Stage.PRODUCTION
    event = ActivityEvent.objects.get(verb="stage.applied", version=version)
    assert event.changes == {"stage": [Stage.UNASSIGNED, Stage.PRODUCTION]}
    assert event.data == {"from": "x", "number": version.number, "imported": True}
    count = ActivityEvent.objects.count()
    stage_import(actor=admin, version=version, stage=Stage.PRODUCTION, data={})
    assert ActivityEvent.objects.count() == count  # nothing to do, nothing recorded


def test_nobody_but_an_org_admin_imports(model, alice, mallory, admin):
    version = version_create(actor=alice, model=model)
    with pytest.raises(Forbidden):
        stage_import(actor=alice, version=version, stage=Stage.PRODUCTION, data={})
    with pytest.raises((Forbidden, NotFound)):
        stage_import(actor=mallory, version=version, stage=Stage.PRODUCTION, data={})
    with pytest.raises(Invalid):
        stage_import(actor=admin, version=version, stage="live", data={})
    with pytest.raises(Forbidden):
        model_imported(actor=alice, model=model, data={})
    version.refresh_from_db()
    assert version.stage == Stage.UNASSIGNED
    assert not model_was_imported(model)
    model_imported(actor=admin, model=model, data={"versions": [1]})
    assert model_was_imported(model)
