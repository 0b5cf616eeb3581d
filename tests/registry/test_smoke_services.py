import io

import pytest

from registry.errors import Forbidden, Locked, NotFound
from registry.models import ActivityEvent, LockLevel
from registry.permissions import get_model_for_user
from registry.services.versions import version_create, version_set_lock_level, version_update


@pytest.mark.django_db
def test_it_registers_a_version_with_an_artifact_and_records_the_event(model, alice):
    version = version_create(
        actor=alice, model=model, params={"lr": 0.1}, artifacts={"model.pkl": io.BytesIO(b"x")}
    )
    assert version.number == 1
    assert version.digest.startswith("sha256:")
    event = ActivityEvent.objects.filter(verb="version.created").get()
    assert event.actor == alice
    assert event.changes["number"] == [None, 1]


@pytest.mark.django_db
def test_it_refuses_ingredient_edits_once_closed(model, alice):
    version = version_create(actor=alice, model=model, params={"lr": 0.1})
    version_set_lock_level(actor=alice, version=version, level=LockLevel.CLOSED)
    with pytest.raises(Locked, match="closed"):
        version_update(actor=alice, version=version, params={"lr": 0.2})
    with pytest.raises(Forbidden, match="org admin"):
        version_set_lock_level(actor=alice, version=version, level=LockLevel.OPEN)


@pytest.mark.django_db
def test_it_hides_models_from_other_orgs(model, mallory):
    with pytest.raises(NotFound):
        get_model_for_user(mallory, "acme", "fraud")
