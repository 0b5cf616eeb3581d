"""Reviewing, applying and cancelling stage change requests (SPEC 3.4 steps 2 and 3)."""

import pytest
from django.contrib.auth import get_user, get_user_model
from django.test import Client, RequestFactory

from approvals.models import Decision, RequestStatus, Review, StageChangeRequest
from approvals.services import request_approve, request_cancel, request_create, request_reject
from registry.errors import Conflict, Forbidden, NotFound
from registry.models import ActivityEvent, LockLevel, ModelVersion, Stage
from registry.services.orgs import org_update
from registry.services.registered_models import model_update
from registry.services.versions import version_set_lock_level
from tests.approvals.conftest import move_to

pytestmark = pytest.mark.django_db


def _verbs() -> list[str]:
    return list(
        ActivityEvent.objects.filter(verb__startswith="stage.")
        .order_by("seq")
        .values_list("verb", flat=True)
    )


def test_it_applies_the_change_when_approved(version, alice, bob):
    request = request_create(
        actor=alice, version=version, to_stage=Stage.STAGING, comment="Passed offline eval."
    )
    request_approve(actor=bob, request=request, comment="Looks good.")
    version.refresh_from_db()
    request.refresh_from_db()
    assert version.stage == Stage.STAGING
    assert request.status == RequestStatus.APPROVED
    assert request.decided_at is not None
    review = Review.objects.get(request=request)
    assert (review.reviewer, review.decision, review.comment) == (bob, "approve", "Looks good.")
    assert _verbs() == ["stage.requested", "stage.approved", "stage.applied"]
    approved = ActivityEvent.objects.get(verb="stage.approved")
    assert approved.actor == bob
    assert approved.data["comment"] == "Looks good."
    applied = ActivityEvent.objects.get(verb="stage.applied")
    assert applied.changes == {"stage": ["unassigned", "staging"]}
    assert applied.version_id == version.pk
    assert applied.data["comment"] == "Passed offline eval."
    assert applied.data["request"] == request.pk
    assert applied.data["number"] == version.number


def test_it_refuses_self_approval(version, alice):
    # alice holds approve on the model, but not on her own request.
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    with pytest.raises(Forbidden, match="you cannot review your own request"):
        request_approve(actor=alice, request=request)
    with pytest.raises(Forbidden, match="you cannot review your own request"):
        request_reject(actor=alice, request=request)
    assert not Review.objects.exists()
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def test_it_refuses_self_approval_from_the_same_user_fetched_anew(version, alice):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    again = get_user_model().objects.get(username="alice")
    assert again is not alice
    with pytest.raises(Forbidden, match="you cannot review your own request"):
        request_approve(actor=again, request=StageChangeRequest.objects.get(pk=request.pk))


def test_it_refuses_self_approval_from_a_second_session(version, alice):
    """Two logged-in sessions of one user are one reviewer: the rule is about the user."""
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    first, second = Client(), Client()
    first.force_login(alice)
    second.force_login(alice)
    assert first.session.session_key != second.session.session_key
    for client in (first, second):
        http_request = RequestFactory().post("/")
        http_request.session = client.session
        session_user = get_user(http_request)
        assert session_user.pk == alice.pk
        with pytest.raises(Forbidden, match="you cannot review your own request"):
            request_approve(actor=session_user, request=request)
    assert not Review.objects.exists()


def test_it_needs_approve_permission(version, alice, carol, mallory):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    with pytest.raises(Forbidden, match="approve permission"):
        request_approve(actor=carol, request=request)
    with pytest.raises(NotFound):
        request_approve(actor=mallory, request=request)
    with pytest.raises(NotFound):
        request_reject(actor=mallory, request=request)
    assert not Review.objects.exists()


def test_it_lets_each_reviewer_review_once(version, model, admin, alice, bob):
    model_update(actor=admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request)
    with pytest.raises(Conflict, match="you have already reviewed"):
        request_approve(actor=bob, request=request)
    with pytest.raises(Conflict, match="you have already reviewed"):
        request_reject(actor=bob, request=request)
    assert Review.objects.filter(reviewer=bob).count() == 1
    assert ActivityEvent.objects.filter(verb="stage.approved").count() == 1


def test_it_answers_a_replayed_approve_with_conflict(version, alice, bob):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request)
    with pytest.raises(Conflict, match="approved: only a pending request can be reviewed"):
        request_approve(actor=bob, request=request)
    assert ActivityEvent.objects.filter(verb="stage.applied").count() == 1
    assert Review.objects.count() == 1


def test_it_applies_only_when_the_model_required_approvals_are_reached(
    version, model, admin, alice, bob
):
    model_update(actor=admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request, comment="one")
    version.refresh_from_db()
    request.refresh_from_db()
    assert version.stage == Stage.UNASSIGNED
    assert request.status == RequestStatus.PENDING
    assert _verbs() == ["stage.requested", "stage.approved"]
    assert ActivityEvent.objects.get(verb="stage.approved").changes == {"approvals": [0, 1]}

    request_approve(actor=admin, request=request, comment="two")
    version.refresh_from_db()
    request.refresh_from_db()
    assert version.stage == Stage.STAGING
    assert request.status == RequestStatus.APPROVED
    assert _verbs() == ["stage.requested", "stage.approved", "stage.approved", "stage.applied"]


def test_it_uses_the_org_setting_without_a_model_override(version, acme, admin, alice, bob):
    org_update(actor=admin, org=acme, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    assert request.required_approvals == 2
    request_approve(actor=bob, request=request)
    version.refresh_from_db()
    assert version.stage == Stage.UNASSIGNED
    request_approve(actor=admin, request=request)
    version.refresh_from_db()
    assert version.stage == Stage.STAGING


def test_it_closes_the_request_on_rejection(version, model, admin, alice, bob):
    model_update(actor=admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=admin, request=request)
    request_reject(actor=bob, request=request, comment="AUC regressed on the holdout set.")
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.status == RequestStatus.REJECTED
    assert version.stage == Stage.UNASSIGNED
    rejected = ActivityEvent.objects.get(verb="stage.rejected")
    assert rejected.actor == bob
    assert rejected.changes == {"status": ["pending", "rejected"]}
    assert rejected.data["comment"] == "AUC regressed on the holdout set."
    assert Review.objects.get(reviewer=bob).decision == Decision.REJECT
    with pytest.raises(Conflict, match="rejected"):
        request_approve(actor=admin, request=request)
    assert not ActivityEvent.objects.filter(verb="stage.applied").exists()


def test_it_lets_the_requester_cancel(version, alice):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_cancel(actor=alice, request=request, comment="Wrong version.")
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    cancelled = ActivityEvent.objects.get(verb="stage.cancelled")
    assert cancelled.actor == alice
    assert cancelled.data["comment"] == "Wrong version."
    assert cancelled.changes == {"status": ["pending", "cancelled"]}


def test_it_lets_an_org_admin_cancel_another_users_request(version, admin, alice):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_cancel(actor=admin, request=request)
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED


def test_it_refuses_cancel_by_others(version, alice, bob, carol, mallory):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    for other in (bob, carol):
        with pytest.raises(Forbidden, match="only the requester or an org admin"):
            request_cancel(actor=other, request=request)
    with pytest.raises(NotFound):
        request_cancel(actor=mallory, request=request)
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING


def test_it_refuses_cancel_after_approval(version, admin, alice, bob):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request)
    for actor in (alice, admin):
        with pytest.raises(Conflict, match="is approved: only a pending request can be cancelled"):
            request_cancel(actor=actor, request=request)
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert version.stage == Stage.STAGING
    assert not ActivityEvent.objects.filter(verb="stage.cancelled").exists()


def test_it_refuses_cancel_after_rejection(version, alice, bob):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_reject(actor=bob, request=request)
    with pytest.raises(Conflict, match="rejected"):
        request_cancel(actor=alice, request=request)


def test_it_archives_the_versions_in_production_when_asked(make_version, alice, bob):
    first = make_version(Stage.PRODUCTION)
    second = make_version(Stage.PRODUCTION)  # without archive_existing, both stay
    first.refresh_from_db()
    assert first.stage == Stage.PRODUCTION
    third = make_version(Stage.STAGING)
    request = request_create(
        actor=alice,
        version=third,
        to_stage=Stage.PRODUCTION,
        archive_existing=True,
        comment="Replaces v1 and v2.",
    )
    request_approve(actor=bob, request=request)
    stages = dict(ModelVersion.objects.values_list("number", "stage"))
    assert stages == {
        first.number: Stage.ARCHIVED,
        second.number: Stage.ARCHIVED,
        third.number: Stage.PRODUCTION,
    }
    applied = ActivityEvent.objects.filter(verb="stage.applied", data__request=request.pk)
    changes = {e.data["number"]: e.changes["stage"] for e in applied}
    assert changes == {
        first.number: ["production", "archived"],
        second.number: ["production", "archived"],
        third.number: ["staging", "production"],
    }
    assert all(e.data["comment"] == "Replaces v1 and v2." for e in applied)


def test_it_supersedes_pending_requests_of_versions_that_moved(make_version, alice, bob, admin):
    old = make_version(Stage.PRODUCTION)
    rollback = request_create(actor=admin, version=old, to_stage=Stage.STAGING)
    new = make_version(Stage.STAGING)
    replace = request_create(
        actor=alice, version=new, to_stage=Stage.PRODUCTION, archive_existing=True
    )
    request_approve(actor=bob, request=replace, comment="ship it")
    rollback.refresh_from_db()
    assert rollback.status == RequestStatus.SUPERSEDED
    assert rollback.decided_at is not None
    superseded = ActivityEvent.objects.get(verb="stage.superseded")
    assert superseded.target_id == str(rollback.pk)
    assert superseded.version_id == old.pk
    assert superseded.data["superseded_by"] == replace.pk
    assert superseded.changes == {"status": ["pending", "superseded"]}
    # The superseded request can no longer be approved: it was decided on a stage gone by.
    with pytest.raises(Conflict, match="superseded"):
        request_approve(actor=bob, request=rollback)
    old.refresh_from_db()
    assert old.stage == Stage.ARCHIVED


def test_it_refuses_a_stale_request(version, alice, bob):
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    # A stage changed out of band (a shell, a data fix): the request was decided on a stage
    # the version is no longer in.
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.DEVELOPMENT)
    with pytest.raises(Conflict, match="stale"):
        request_approve(actor=bob, request=request)
    version.refresh_from_db()
    request.refresh_from_db()
    assert version.stage == Stage.DEVELOPMENT
    assert request.status == RequestStatus.PENDING
    assert not Review.objects.exists()


def test_it_moves_the_stage_of_a_closed_version(version, alice, bob):
    version_set_lock_level(actor=alice, version=version, level=LockLevel.CLOSED)
    version = move_to(version, Stage.STAGING, requester=alice, reviewer=bob)
    assert version.stage == Stage.STAGING
    assert version.lock_level == LockLevel.CLOSED


def test_it_keeps_the_history_of_the_stage(version, alice, bob):
    move_to(version, Stage.STAGING, requester=alice, reviewer=bob)
    move_to(version, Stage.PRODUCTION, requester=alice, reviewer=bob)
    stages = list(version.history.order_by("history_id").values_list("stage", flat=True))
    assert stages == ["unassigned", "staging", "production"]
