"""Requesting a stage change (SPEC 3.3, 3.4 step 1)."""

import pytest

from approvals.models import RequestKind, RequestStatus, StageChangeRequest
from approvals.services import request_cancel, request_create
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Stage, Visibility
from registry.services.registered_models import model_update
from registry.services.versions import version_create
from tests.approvals.conftest import move_to

pytestmark = pytest.mark.django_db


def test_it_records_a_pending_request_and_its_event_with_the_comment(version, alice):
    request = request_create(
        actor=alice, version=version, to_stage=Stage.STAGING, comment="Ready for final tests."
    )
    request.refresh_from_db()
    assert request.kind == RequestKind.STAGE
    assert request.status == RequestStatus.PENDING
    assert (request.from_stage, request.to_stage) == (Stage.UNASSIGNED, Stage.STAGING)
    assert request.requester == alice
    assert request.required_approvals == 1
    assert request.decided_at is None
    event = ActivityEvent.objects.get(verb="stage.requested")
    assert event.actor == alice
    assert event.version_id == version.pk
    assert event.target_type == "stage_request"
    assert event.target_id == str(request.pk)
    assert event.changes == {"status": [None, "pending"]}
    assert event.data["comment"] == "Ready for final tests."
    assert event.data["from_stage"] == "unassigned"
    assert event.data["to_stage"] == "staging"
    assert event.data["number"] == version.number
    version.refresh_from_db()
    assert version.stage == Stage.UNASSIGNED  # nothing moves before review


def test_it_takes_a_request_without_a_comment(version, alice):
    request = request_create(actor=alice, version=version, to_stage=Stage.DEVELOPMENT)
    assert request.comment == ""
    assert ActivityEvent.objects.get(verb="stage.requested").data["comment"] == ""


def test_it_refuses_a_second_pending_request_on_the_same_version(version, alice, admin):
    first = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    for actor, stage in ((alice, Stage.STAGING), (admin, Stage.PRODUCTION)):
        with pytest.raises(Conflict, match=rf"already has a pending request \(#{first.pk}"):
            request_create(actor=actor, version=version, to_stage=stage)
    assert StageChangeRequest.objects.filter(version=version).count() == 1
    assert ActivityEvent.objects.filter(verb="stage.requested").count() == 1
    # Once the first is closed, the version takes a new request.
    request_cancel(actor=alice, request=first)
    request_create(actor=alice, version=version, to_stage=Stage.PRODUCTION)


def test_it_allows_pending_requests_on_different_versions(make_version, alice):
    one, two = make_version(), make_version()
    request_create(actor=alice, version=one, to_stage=Stage.STAGING)
    request_create(actor=alice, version=two, to_stage=Stage.STAGING)
    assert StageChangeRequest.objects.pending().count() == 2


@pytest.mark.parametrize("stage", [Stage.DEVELOPMENT, Stage.STAGING, Stage.ARCHIVED])
def test_it_refuses_archive_existing_except_for_production(version, alice, stage):
    with pytest.raises(Invalid, match="archive_existing applies only to a request for production"):
        request_create(actor=alice, version=version, to_stage=stage, archive_existing=True)
    assert not StageChangeRequest.objects.exists()


def test_it_takes_archive_existing_for_production(version, alice):
    request = request_create(
        actor=alice, version=version, to_stage=Stage.PRODUCTION, archive_existing=True
    )
    assert request.archive_existing is True
    assert ActivityEvent.objects.get(verb="stage.requested").data["archive_existing"] is True


def test_it_refuses_production_from_an_unprotected_branch(make_version, experimental, alice):
    version = make_version(branch="exp")
    with pytest.raises(Invalid, match="branch exp, which is not protected"):
        request_create(actor=alice, version=version, to_stage=Stage.PRODUCTION)
    assert not StageChangeRequest.objects.exists()
    assert not ActivityEvent.objects.filter(verb="stage.requested").exists()
    # Other stages are open to experimental versions.
    request_create(actor=alice, version=version, to_stage=Stage.STAGING)


def test_it_refuses_the_stage_the_version_is_in(version, alice):
    with pytest.raises(Invalid, match="already in unassigned"):
        request_create(actor=alice, version=version, to_stage=Stage.UNASSIGNED)


def test_it_refuses_an_unknown_stage(version, alice):
    with pytest.raises(Invalid, match="stage must be one of"):
        request_create(actor=alice, version=version, to_stage="live")


def test_it_refuses_a_comment_that_is_not_text(version, alice):
    with pytest.raises(Invalid, match="comment must be text"):
        request_create(actor=alice, version=version, to_stage=Stage.STAGING, comment=42)


def test_it_needs_write_permission(version, bob, carol, mallory):
    for viewer in (bob, carol):  # bob may approve, carol only view: neither may write
        with pytest.raises(Forbidden, match="write permission"):
            request_create(actor=viewer, version=version, to_stage=Stage.STAGING)
    with pytest.raises(NotFound):
        request_create(actor=mallory, version=version, to_stage=Stage.STAGING)
    # The access is checked before the request's own fields.
    with pytest.raises(Forbidden, match="write permission"):
        request_create(actor=carol, version=version, to_stage="live")
    with pytest.raises(NotFound):
        request_create(actor=mallory, version=version, to_stage="live")
    assert not StageChangeRequest.objects.exists()


def test_it_hides_a_private_model_from_those_not_granted(model, admin, alice, carol):
    model_update(actor=admin, model=model, visibility=Visibility.PRIVATE)
    version = version_create(actor=alice, model=model)
    with pytest.raises(NotFound):
        request_create(actor=carol, version=version, to_stage=Stage.STAGING)


U, D, S, P, A = (
    Stage.UNASSIGNED,
    Stage.DEVELOPMENT,
    Stage.STAGING,
    Stage.PRODUCTION,
    Stage.ARCHIVED,
)


@pytest.mark.parametrize(
    ("start", "to", "skips", "moves_back"),
    [
        (U, D, False, False),
        (D, S, False, False),
        (S, P, False, False),
        (U, S, True, False),
        (U, P, True, False),
        (D, P, True, False),
        (S, D, False, True),
        (P, S, False, True),
        (P, U, False, True),
        # Archived is never a skip, from anywhere; leaving it moves back.
        (U, A, False, False),
        (D, A, False, False),
        (P, A, False, False),
        (A, S, False, True),
        (A, P, False, True),
    ],
)
def test_it_flags_skips_and_moves_back(make_version, alice, bob, start, to, skips, moves_back):
    version = make_version()
    if start != Stage.UNASSIGNED:
        move_to(version, start, requester=alice, reviewer=bob)
    request = request_create(actor=alice, version=version, to_stage=to)
    assert (request.skips, request.moves_back) == (skips, moves_back)
    event = ActivityEvent.objects.filter(verb="stage.requested").latest("seq")
    assert (event.data["skips"], event.data["moves_back"]) == (skips, moves_back)


def test_it_snapshots_the_required_approvals(version, model, admin, alice):
    model_update(actor=admin, model=model, required_approvals=3)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    model_update(actor=admin, model=model, required_approvals=1)
    request.refresh_from_db()
    assert request.required_approvals == 3


def test_it_keeps_field_history_of_requests(version, alice):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_cancel(actor=alice, request=request)
    statuses = list(request.history.order_by("history_id").values_list("status", flat=True))
    assert statuses == ["pending", "cancelled"]
