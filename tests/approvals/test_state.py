"""What was in each stage, and where each alias pointed, at a past time T (SPEC 3.7)."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from approvals.services import alias_request_create, request_approve, request_create
from registry.demo import ensure_shared_model
from registry.errors import Invalid
from registry.models import Stage
from registry.services.aliases import alias_protect, alias_remove, alias_set
from registry.services.versions import version_create, version_delete
from registry.state import model_state_at
from tests.approvals.conftest import move_to

pytestmark = pytest.mark.django_db

DAY1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The process clock, set by the test: every event takes its time from here."""

    def __init__(self) -> None:
        self.now = DAY1

    def at(self, when: datetime) -> None:
        self.now = when

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    clock = Clock()
    with mock.patch("django.utils.timezone.now", clock):
        yield clock


def day(n: int, hour: int = 9) -> datetime:
    return DAY1 + timedelta(days=n - 1, hours=hour - 9)


def test_it_answers_for_five_past_instants(model, admin, alice, bob, clock):
    # Day 1: v1 registered and sent to staging; "champion" points at it.
    clock.at(day(1))
    v1 = version_create(actor=alice, model=model)
    move_to(v1, Stage.STAGING, requester=alice, reviewer=bob)
    alias_set(actor=alice, model=model, name="champion", version=v1)
    # Day 2: v1 promoted to production; v2 registered; "champion" protected.
    clock.at(day(2))
    move_to(v1, Stage.PRODUCTION, requester=alice, reviewer=bob)
    v2 = version_create(actor=alice, model=model)
    alias_set(actor=alice, model=model, name="challenger", version=v2)
    alias_protect(actor=admin, model=model, name="champion")
    # Day 3: v2 replaces v1 in production (v1 archived); champion moves through review.
    clock.at(day(3))
    move_to(v2, Stage.PRODUCTION, requester=alice, reviewer=bob, archive_existing=True)
    request = alias_request_create(actor=alice, model=model, name="champion", version=v2)
    request_approve(actor=bob, request=request)
    alias_remove(actor=alice, model=model, name="challenger")
    # Day 4: v3 registered and in development; a request for staging is still pending.
    clock.at(day(4))
    v3 = version_create(actor=alice, model=model)
    move_to(v3, Stage.DEVELOPMENT, requester=alice, reviewer=bob)
    request_create(actor=alice, version=v3, to_stage=Stage.STAGING)
    alias_set(actor=alice, model=model, name="challenger", version=v3)
    # Day 5: v3 deleted (its alias with it); v4 registered.
    clock.at(day(5))
    version_delete(actor=alice, version=v3)
    v4 = version_create(actor=alice, model=model)
    clock.at(day(6))

    assert model_state_at(model, day(1, hour=8)) == {"versions": {}, "aliases": {}}
    assert model_state_at(model, day(1, hour=12)) == {
        "versions": {1: "staging"},
        "aliases": {"champion": 1},
    }
    assert model_state_at(model, day(2, hour=12)) == {
        "versions": {1: "production", 2: "unassigned"},
        "aliases": {"challenger": 2, "champion": 1},
    }
    assert model_state_at(model, day(3, hour=12)) == {
        "versions": {1: "archived", 2: "production"},
        "aliases": {"champion": 2},
    }
    assert model_state_at(model, day(4, hour=12)) == {
        "versions": {1: "archived", 2: "production", 3: "development"},
        "aliases": {"challenger": 3, "champion": 2},
    }
    assert model_state_at(model, day(5, hour=12)) == {
        "versions": {1: "archived", 2: "production", 4: "unassigned"},
        "aliases": {"champion": 2},
    }
    # Events at exactly T count: day 3 at 9:00 is after v2's promotion.
    assert model_state_at(model, day(3))["versions"] == {1: "archived", 2: "production"}
    assert v4.number == 4


def test_it_agrees_with_the_present(model, alice, bob, make_version):
    v1 = make_version(Stage.PRODUCTION)
    make_version(Stage.STAGING)
    alias_set(actor=alice, model=model, name="champion", version=v1)
    state = model_state_at(model, datetime.now(UTC) + timedelta(seconds=1))
    stages = {v.number: v.stage for v in model.versions.all()}
    aliases = {a.name: a.version.number for a in model.aliases.select_related("version")}
    assert state == {"versions": stages, "aliases": aliases}


def test_it_reads_only_its_own_model(cast, model, alice, make_version):
    make_version(Stage.STAGING)
    other = ensure_shared_model(cast, "churn")
    version_create(actor=alice, model=other)
    state = model_state_at(other, datetime.now(UTC) + timedelta(seconds=1))
    assert state == {"versions": {1: "unassigned"}, "aliases": {}}


def test_it_refuses_a_time_without_zone(model):
    with pytest.raises(Invalid, match="time zone"):
        model_state_at(model, datetime(2026, 3, 1, 12, 0))
