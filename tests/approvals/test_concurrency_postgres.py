"""Approval races that only real parallel connections can show (SPEC 3.4): each racer is a
thread with its own PostgreSQL connection, released together by a barrier."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from approvals.models import RequestStatus, Review, StageChangeRequest
from approvals.services import request_approve, request_create
from registry.audit import verify_chain
from registry.errors import Conflict, RegistryError
from registry.models import ActivityChain, ActivityEvent, ModelVersion, Stage
from registry.services.orgs import membership_set
from registry.services.registered_models import model_grant, model_update
from registry.services.versions import version_create
from tests.approvals.conftest import move_to

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

User = get_user_model()


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads that start together; each result or raised exception.

    Connections open before the barrier, so that the race is between the services rather
    than between handshakes, and close at the end.
    """
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer is still running after 120 s"
    unexpected = [r for r in results if isinstance(r, BaseException)]
    unexpected = [r for r in unexpected if not isinstance(r, RegistryError)]
    # Anything but a domain refusal (a deadlock, an IntegrityError) would be a 500.
    assert not unexpected, f"{len(unexpected)} of {n} racers failed: {unexpected!r}"
    return results


def _approve(actor, pk: int, comment: str = ""):
    return request_approve(actor=actor, request=StageChangeRequest(pk=pk), comment=comment)


def _chain_is_intact(org) -> None:
    chain = ActivityChain.objects.get(org=org)
    events = ActivityEvent.objects.filter(org=org).order_by("seq").values()
    checked, broken = verify_chain(events, head_seq=chain.seq, head_hash=chain.head)
    assert broken is None, broken
    assert checked == chain.seq


@pytest.fixture
def reviewers(cast, model):
    """50 members of acme, each granted approve on acme/fraud."""
    users = []
    for i in range(50):
        user = User.objects.create_user(f"reviewer{i:02}")
        membership_set(actor=cast.admin, org=cast.acme, user=user)
        model_grant(actor=cast.admin, model=model, permission="approve", user=user)
        users.append(user)
    return users


def test_it_applies_once_whatever_the_number_of_racing_approvers(cast, model, reviewers, alice):
    targets = [Stage.STAGING, Stage.PRODUCTION, Stage.DEVELOPMENT, Stage.ARCHIVED]
    for round_ in range(10):
        required = 1 if round_ % 2 == 0 else 3
        model_update(actor=cast.admin, model=model, required_approvals=required)
        version = version_create(actor=alice, model=model)
        target = targets[round_ % len(targets)]
        request = request_create(actor=alice, version=version, to_stage=target)

        results = race(50, lambda i, pk=request.pk: _approve(reviewers[i], pk, f"r{i}"))

        approved = [r for r in results if isinstance(r, StageChangeRequest)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(approved) == required, f"round {round_}"
        assert all(isinstance(r, Conflict) for r in refused), refused
        assert len(refused) == 50 - required
        request.refresh_from_db()
        version.refresh_from_db()
        assert request.status == RequestStatus.APPROVED
        assert version.stage == target
        assert Review.objects.filter(request=request).count() == required
        # One transition: one stage change in the version's history, one applied event.
        stages = list(version.history.order_by("history_id").values_list("stage", flat=True))
        assert stages == [Stage.UNASSIGNED, target]
        assert ActivityEvent.objects.filter(verb="stage.applied", version=version).count() == 1
        assert (
            ActivityEvent.objects.filter(verb="stage.approved", data__request=request.pk).count()
            == required
        )
    _chain_is_intact(cast.acme)


def test_it_answers_replayed_approves_with_conflict(cast, model, version, alice, bob):
    model_update(actor=cast.admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)

    results = race(20, lambda i: _approve(bob, request.pk))

    assert sum(isinstance(r, StageChangeRequest) for r in results) == 1
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 19
    assert all(isinstance(r, Conflict) for r in refused)
    assert Review.objects.filter(request=request, reviewer=bob).count() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.PENDING  # one approval of two
    with pytest.raises(Conflict, match="already reviewed"):
        _approve(bob, request.pk)
    request_approve(actor=cast.admin, request=request)
    with pytest.raises(Conflict, match="only a pending request"):
        _approve(bob, request.pk)
    assert ActivityEvent.objects.filter(verb="stage.applied").count() == 1


def test_it_keeps_one_pending_request_per_version_under_racing_requesters(cast, version):
    writers = [cast.alice, cast.admin] * 5

    results = race(
        10,
        lambda i: request_create(actor=writers[i], version=version, to_stage=Stage.STAGING),
    )

    assert sum(isinstance(r, StageChangeRequest) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert StageChangeRequest.objects.pending().filter(version=version).count() == 1
    assert ActivityEvent.objects.filter(verb="stage.requested").count() == 1


def test_it_applies_one_of_two_requests_on_a_version_approved_at_once(
    cast, model, make_version, alice, bob
):
    """v_old is in production with a pending rollback (to staging); v_new's request for
    production archives what is in production. Approved at once, exactly one of the two
    moves v_old: the other finds it superseded, or no longer in production to archive."""
    admin = cast.admin
    for _ in range(5):
        old = make_version(Stage.PRODUCTION)
        rollback = request_create(actor=admin, version=old, to_stage=Stage.STAGING)
        new = make_version(Stage.STAGING)
        replace = request_create(
            actor=alice, version=new, to_stage=Stage.PRODUCTION, archive_existing=True
        )
        before = old.history.count()

        pks = [rollback.pk, replace.pk]
        results = race(2, lambda i, pks=pks: _approve(bob, pks[i]))

        old.refresh_from_db()
        rollback.refresh_from_db()
        replace.refresh_from_db()
        assert old.history.count() == before + 1  # v_old moved exactly once
        applied_to_old = ActivityEvent.objects.filter(verb="stage.applied", version=old)
        assert applied_to_old.count() == 2  # its promotion earlier, and this one move
        if old.stage == Stage.ARCHIVED:
            assert rollback.status == RequestStatus.SUPERSEDED
            assert isinstance(results[0], Conflict)
        else:
            assert old.stage == Stage.STAGING
            assert rollback.status == RequestStatus.APPROVED
        assert replace.status == RequestStatus.APPROVED
        assert ModelVersion.objects.get(pk=new.pk).stage == Stage.PRODUCTION
        # Leave nothing in production for the next round.
        move_to(ModelVersion.objects.get(pk=new.pk), Stage.ARCHIVED, requester=alice, reviewer=bob)
    _chain_is_intact(cast.acme)


def test_it_refuses_a_stale_request(cast, model, make_version, version, alice, bob):
    admin = cast.admin
    request = request_create(actor=alice, version=version, to_stage=Stage.DEVELOPMENT)
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.STAGING)  # out of band
    with pytest.raises(Conflict, match="stale"):
        _approve(bob, request.pk)
    # And through the services: a rollback request left behind when its version was
    # archived by another request is closed, and approving it is refused.
    old = make_version(Stage.PRODUCTION)
    rollback = request_create(actor=admin, version=old, to_stage=Stage.STAGING)
    new = make_version(Stage.STAGING)
    replace = request_create(
        actor=alice, version=new, to_stage=Stage.PRODUCTION, archive_existing=True
    )
    request_approve(actor=bob, request=replace)
    with pytest.raises(Conflict, match="superseded"):
        _approve(bob, rollback.pk)
    old.refresh_from_db()
    assert old.stage == Stage.ARCHIVED
