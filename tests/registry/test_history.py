"""The audit history simple-history keeps of a registry row."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_records_the_requests_user_and_no_user_outside_a_request(model, alice):
    from registry.services.versions import version_create

    version = version_create(actor=alice, model=model)
    row = version.history.get()
    assert (row.history_type, row.history_user_id, row.number) == ("+", None, 1)
    assert row.tags == version.tags and row.digest == version.digest


def test_every_recorded_model_hands_out_one_history_manager_class(model, alice):
    from django.apps import apps

    from registry.models.history import OnceHistoryManager
    from registry.services.versions import version_create

    first, second = (
        version_create(actor=alice, model=model),
        version_create(actor=alice, model=model),
    )
    assert type(first.history) is type(second.history)
    assert [row.number for row in second.history.all()] == [2]
    ours = [
        m for label in ("registry", "approvals") for m in apps.get_app_config(label).get_models()
    ]
    recorded = [m for m in ours if hasattr(m, "history")]
    assert len(recorded) >= 12
    for recorded_model in recorded:
        assert isinstance(recorded_model.history, OnceHistoryManager), recorded_model
