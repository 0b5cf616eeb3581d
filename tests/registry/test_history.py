"""The audit history simple-history keeps of a registry row."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_records_the_requests_user_and_no_user_outside_a_request(model, alice):
    from registry.services.versions import version_create

    version = version_create(actor=alice, model=model)
    row = version.history.get()
    assert (row.history_type, row.history_user_id, row.number) == ("+", None, 1)
    assert row.tags == version.tags and row.digest == version.digest
