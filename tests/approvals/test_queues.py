"""The pending requests of a model, and the global queue of requests a user may review."""

import pytest
from django.contrib.auth import get_user_model

from approvals.models import StageChangeRequest
from approvals.services import request_approve, request_cancel, request_create
from registry.demo import ensure_shared_model
from registry.models import Stage, Visibility
from registry.services.orgs import (
    membership_remove,
    membership_set,
    team_create,
    team_set_members,
)
from registry.services.registered_models import model_create, model_grant, model_update
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


def test_it_lists_the_pending_requests_of_a_model_across_versions(cast, model, make_version):
    alice, bob = cast.alice, cast.bob
    one, two, three = make_version(), make_version(), make_version()
    first = request_create(actor=alice, version=one, to_stage=Stage.STAGING)
    second = request_create(actor=alice, version=two, to_stage=Stage.DEVELOPMENT)
    done = request_create(actor=alice, version=three, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=done)
    other_model = ensure_shared_model(cast, "churn")
    request_create(
        actor=alice, version=version_create(actor=alice, model=other_model), to_stage=Stage.STAGING
    )
    pending = StageChangeRequest.objects.for_model(model).pending()
    assert set(pending) == {first, second}


def test_it_queues_for_a_reviewer_what_they_may_approve(cast, model, make_version):
    admin, alice, bob, carol, mallory = cast.admin, cast.alice, cast.bob, cast.carol, cast.mallory
    mine = request_create(actor=alice, version=make_version(), to_stage=Stage.STAGING)
    by_admin = request_create(actor=admin, version=make_version(), to_stage=Stage.STAGING)
    queue = StageChangeRequest.objects.reviewable_by
    assert set(queue(bob)) == {mine, by_admin}
    assert set(queue(alice)) == {by_admin}  # never one's own
    assert set(queue(admin)) == {mine}  # org admins approve every model of their org
    assert not queue(carol).exists()  # view only
    assert not queue(mallory).exists()  # another org


def test_it_leaves_out_what_is_decided_or_already_reviewed(cast, model, make_version):
    admin, alice, bob = cast.admin, cast.alice, cast.bob
    model_update(actor=admin, model=model, required_approvals=2)
    waiting = request_create(actor=alice, version=make_version(), to_stage=Stage.STAGING)
    cancelled = request_create(actor=alice, version=make_version(), to_stage=Stage.STAGING)
    request_cancel(actor=alice, request=cancelled)
    request_approve(actor=bob, request=waiting)
    assert not StageChangeRequest.objects.reviewable_by(bob).exists()  # bob has had his say
    assert set(StageChangeRequest.objects.reviewable_by(admin)) == {waiting}


def test_it_queues_through_team_grants_and_not_private_models(cast, acme):
    admin, alice, bob = cast.admin, cast.alice, cast.bob
    private = model_create(actor=alice, org=acme, name="secret", visibility=Visibility.PRIVATE)
    request = request_create(
        actor=alice, version=version_create(actor=alice, model=private), to_stage=Stage.STAGING
    )
    assert not StageChangeRequest.objects.reviewable_by(bob).exists()
    team = team_create(actor=admin, org=acme, name="reviewers")
    team_set_members(actor=admin, team=team, users=[bob])
    model_grant(actor=alice, model=private, permission="approve", team=team)
    assert list(StageChangeRequest.objects.reviewable_by(bob)) == [request]


def test_it_leaves_out_models_where_a_grant_outlived_the_membership(cast, acme, model, version):
    admin, alice = cast.admin, cast.alice
    dave = get_user_model().objects.create_user("dave")
    membership_set(actor=admin, org=acme, user=dave)
    model_grant(actor=admin, model=model, permission="approve", user=dave)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    assert list(StageChangeRequest.objects.reviewable_by(dave)) == [request]
    membership_remove(actor=admin, org=acme, user=dave)
    assert not StageChangeRequest.objects.reviewable_by(dave).exists()


def _render(requests) -> list[str]:
    # What a queue page shows of each row.
    return [
        f"{r} {r.model.org.slug} {r.version.branch.name} {r.requester.username} {r.approvals}"
        for r in requests
    ]


def test_it_lists_the_queue_in_a_constant_number_of_queries(
    cast, model, make_version, django_assert_num_queries
):
    alice, bob = cast.alice, cast.bob
    for _ in range(3):
        request_create(actor=alice, version=make_version(), to_stage=Stage.STAGING)
    with django_assert_num_queries(1):
        few = _render(StageChangeRequest.objects.reviewable_by(bob).for_listing()[:50])
    for _ in range(27):
        request_create(actor=alice, version=make_version(), to_stage=Stage.STAGING)
    with django_assert_num_queries(1):
        many = _render(StageChangeRequest.objects.reviewable_by(bob).for_listing()[:50])
    assert (len(few), len(many)) == (3, 30)
    assert all(line.endswith(" 0") for line in many)


def test_it_counts_approvals_so_far(cast, model, version):
    admin, alice, bob = cast.admin, cast.alice, cast.bob
    model_update(actor=admin, model=model, required_approvals=2)
    request = request_create(actor=alice, version=version, to_stage=Stage.STAGING)
    request_approve(actor=bob, request=request)
    listed = StageChangeRequest.objects.reviewable_by(admin).for_listing().get()
    assert (listed.approvals, listed.required_approvals) == (1, 2)
