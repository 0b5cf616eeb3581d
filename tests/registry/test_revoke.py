"""model_revoke takes back only what is held, from one grantee, and records only that."""

import pytest

from registry.errors import Invalid, NotFound
from registry.models import ActivityEvent
from registry.services.registered_models import model_grant, model_revoke

pytestmark = pytest.mark.django_db


def test_it_refuses_a_grant_not_held_and_records_nothing(model, admin, carol):
    events = ActivityEvent.objects.count()
    with pytest.raises(NotFound, match="carol holds no write grant on fraud"):
        model_revoke(actor=admin, model=model, permission="write", user=carol)
    assert ActivityEvent.objects.count() == events
    model_grant(actor=admin, model=model, permission="write", user=carol)
    model_revoke(actor=admin, model=model, permission="write", user=carol)
    assert ActivityEvent.objects.filter(verb="permission.revoked").count() == 1


def test_it_refuses_a_revoke_naming_no_grantee(model, admin):
    with pytest.raises(Invalid, match="exactly one"):
        model_revoke(actor=admin, model=model, permission="view")
