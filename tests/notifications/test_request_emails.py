"""Who is e-mailed about a stage request's life: one e-mail per decision to the requester,
the cancellation to the reviewers who were asked, and subjects that name the version."""

import pytest
from django.core import mail

from approvals.services import request_approve, request_cancel, request_create
from notifications.services import preferences_set, reviewers_of
from registry.models import LockLevel, Stage
from registry.services.registered_models import model_update
from registry.services.versions import version_create, version_set_lock_level

pytestmark = pytest.mark.django_db


def sent() -> list[tuple[str, str]]:
    return sorted((m.to[0], m.subject) for m in mail.outbox)


def test_it_tells_the_requester_of_each_approval_but_the_last_once(
    committed, model, admin, alice, bob
):
    model_update(actor=admin, model=model, required_approvals=2)
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_approve, actor=bob, request=request)
    assert sent() == [(alice.email, "[Modelvault] Your request for fraud v1 was approved")]
    mail.outbox.clear()
    committed(request_approve, actor=admin, request=request)
    assert sent() == [(alice.email, "[Modelvault] fraud v1 moved to staging")]


def test_it_tells_the_requester_who_opted_out_of_stage_changes_of_their_decision(
    committed, model, alice, bob
):
    preferences_set(actor=alice, enabled={"stage_applied": False})
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_approve, actor=bob, request=request)
    assert sent() == [(alice.email, "[Modelvault] fraud v1 moved to staging")]
    preferences_set(actor=alice, enabled={"stage_applied": True, "stage_decided": False})
    other = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=other, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_approve, actor=bob, request=request)
    assert sent() == []


def test_it_tells_the_reviewers_who_were_asked_of_a_cancellation(
    committed, model, admin, alice, bob, carol
):
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_cancel, actor=alice, request=request, comment="wrong version")
    assert [to for to, _ in sent()] == sorted([admin.email, bob.email])
    assert sent()[0][1] == "[Modelvault] Request cancelled: fraud v1 to staging, no review needed"
    assert "wrong version" in mail.outbox[0].body


def test_it_does_not_tell_the_admin_who_cancelled_nor_the_requester(
    committed, model, admin, alice, bob
):
    version = version_create(actor=alice, model=model)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    mail.outbox.clear()
    committed(request_cancel, actor=admin, request=request)
    # The reviewers asked (the requester never was one); the admin acted, so is not told.
    assert [to for to, _ in sent()] == [bob.email]


def test_it_names_the_version_in_a_lock_change_subject(committed, model, alice, carol):
    from registry.services.registered_models import model_watch

    model_watch(actor=carol, model=model)
    version = version_create(actor=alice, model=model)
    mail.outbox.clear()
    committed(version_set_lock_level, actor=alice, version=version, level=LockLevel.REDACT)
    assert sent() == [(carol.email, "[Modelvault] fraud v1 lock raised to redact")]


def test_it_lists_as_reviewers_those_who_may_approve_but_the_requester(model, admin, alice, bob):
    assert reviewers_of(model, exclude_id=alice.pk) == sorted([admin, bob], key=lambda u: u.pk)
