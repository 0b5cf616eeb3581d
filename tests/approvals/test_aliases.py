"""Aliases, protected aliases through review, and `model@alias` references (SPEC 2, 3.4)."""

import pytest

from approvals.models import RequestKind, RequestStatus, StageChangeRequest
from approvals.services import (
    alias_request_create,
    request_approve,
    request_cancel,
    request_reject,
)
from registry.demo import ensure_shared_model
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, Alias, ModelVersion
from registry.permissions import get_version_by_ref
from registry.services.aliases import alias_protect, alias_remove, alias_set
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def v1(make_version):
    return make_version()


@pytest.fixture
def v2(make_version, v1):
    return make_version()


@pytest.fixture
def champion(model, admin, v1):
    """acme/fraud@champion on v1, protected by the org admin."""
    alias_set(actor=admin, model=model, name="champion", version=v1)
    return alias_protect(actor=admin, model=model, name="champion")


def _alias_events():
    return list(
        ActivityEvent.objects.filter(verb__startswith="alias.")
        .order_by("seq")
        .values_list("verb", "changes", "data__alias")
    )


def test_it_sets_moves_and_removes_an_alias_with_events(model, alice, v1, v2):
    alias = alias_set(actor=alice, model=model, name="candidate", version=v1, comment="first")
    assert (alias.version, alias.protected, alias.created_by) == (v1, False, alice)
    alias_set(actor=alice, model=model, name="candidate", version=v2)
    assert Alias.objects.get(model=model, name="candidate").version == v2
    alias_set(actor=alice, model=model, name="candidate", version=v2)  # already there: no event
    alias_remove(actor=alice, model=model, name="candidate", comment="done")
    assert not Alias.objects.exists()
    assert _alias_events() == [
        ("alias.set", {"version": [None, 1]}, "candidate"),
        ("alias.moved", {"version": [1, 2]}, "candidate"),
        ("alias.removed", {"version": [2, None]}, "candidate"),
    ]
    set_event = ActivityEvent.objects.get(verb="alias.set")
    assert (set_event.actor, set_event.data["comment"], set_event.version_id) == (
        alice,
        "first",
        v1.pk,
    )
    assert ActivityEvent.objects.get(verb="alias.removed").data["comment"] == "done"


@pytest.mark.parametrize("name", ["", "has space", "a@b", "-lead", "42", "x" * 129])
def test_it_refuses_an_invalid_alias_name(model, alice, v1, name):
    with pytest.raises(Invalid):
        alias_set(actor=alice, model=model, name=name, version=v1)
    assert not Alias.objects.exists()


def test_it_refuses_a_version_of_another_model(cast, model, alice, carol, v1):
    other = version_create(actor=alice, model=ensure_shared_model(cast, "churn"))
    with pytest.raises(Invalid, match="not a version of fraud"):
        alias_set(actor=alice, model=model, name="champion", version=other)
    # The model's own access answers first: carol may only view fraud.
    with pytest.raises(Forbidden, match="write permission on model fraud"):
        alias_set(actor=carol, model=model, name="champion", version=other)
    gone = version_create(actor=alice, model=model)
    ModelVersion.objects.filter(pk=gone.pk).delete()
    with pytest.raises(NotFound, match=f"version {gone.number} of model fraud not found"):
        alias_set(actor=alice, model=model, name="champion", version=gone)
    assert not Alias.objects.exists()


def test_it_refuses_a_foreign_version_at_the_row_too(cast, model, alice, v1):
    # The guard behind the service: whoever saves, an alias stays within its model.
    other = version_create(actor=alice, model=ensure_shared_model(cast, "churn"))
    with pytest.raises(Invalid, match="its own model"):
        Alias.objects.create(model=model, name="x", version=other)


def test_it_needs_write_permission_for_aliases(model, bob, carol, mallory, v1):
    for user in (bob, carol):
        with pytest.raises(Forbidden, match="write permission"):
            alias_set(actor=user, model=model, name="champion", version=v1)
    with pytest.raises(NotFound):
        alias_set(actor=mallory, model=model, name="champion", version=v1)


def test_it_refuses_a_writer_moving_or_removing_a_protected_alias(model, alice, champion, v2):
    with pytest.raises(Forbidden, match="alias champion of fraud is protected: request"):
        alias_set(actor=alice, model=model, name="champion", version=v2)
    with pytest.raises(Forbidden, match="protected"):
        alias_remove(actor=alice, model=model, name="champion")
    champion.refresh_from_db()
    assert champion.version.number == 1
    assert [verb for verb, *_ in _alias_events()] == ["alias.set", "alias.protected"]


def test_it_lets_an_org_admin_move_a_protected_alias(model, admin, champion, v2):
    alias_set(actor=admin, model=model, name="champion", version=v2)
    champion.refresh_from_db()
    assert champion.version == v2


def test_it_lets_only_org_admins_protect(model, admin, alice, v1):
    alias_set(actor=alice, model=model, name="champion", version=v1)
    with pytest.raises(Forbidden, match="org admin"):
        alias_protect(actor=alice, model=model, name="champion")
    alias_protect(actor=admin, model=model, name="champion")
    alias_protect(actor=admin, model=model, name="champion", protected=False)
    protected = ActivityEvent.objects.filter(verb__in=["alias.protected", "alias.unprotected"])
    assert [(e.verb, e.changes) for e in protected.order_by("seq")] == [
        ("alias.protected", {"protected": [False, True]}),
        ("alias.unprotected", {"protected": [True, False]}),
    ]


def test_it_moves_a_protected_alias_through_an_approved_request(model, alice, bob, champion, v2):
    request = alias_request_create(
        actor=alice, model=model, name="champion", version=v2, comment="v2 wins the A/B test."
    )
    assert (request.kind, request.alias_from, request.version) == (
        RequestKind.ALIAS_MOVE,
        champion.version,
        v2,
    )
    champion.refresh_from_db()
    assert champion.version.number == 1  # nothing moves before review
    request_approve(actor=bob, request=request, comment="Agreed.")
    champion.refresh_from_db()
    request.refresh_from_db()
    assert champion.version == v2
    assert champion.protected  # still protected after the move
    assert request.status == RequestStatus.APPROVED
    verbs = list(
        ActivityEvent.objects.filter(data__request=request.pk)
        .order_by("seq")
        .values_list("verb", flat=True)
    )
    assert verbs == ["stage.requested", "stage.approved", "alias.moved"]
    moved = ActivityEvent.objects.get(verb="alias.moved")
    assert moved.actor == bob
    assert moved.changes == {"version": [1, 2]}
    assert moved.data["comment"] == "v2 wins the A/B test."
    assert ActivityEvent.objects.get(verb="stage.approved").data["comment"] == "Agreed."


def test_it_removes_a_protected_alias_through_an_approved_request(model, alice, bob, champion):
    request = alias_request_create(actor=alice, model=model, name="champion", version=None)
    assert request.kind == RequestKind.ALIAS_REMOVE
    request_approve(actor=bob, request=request)
    assert not Alias.objects.exists()
    assert ActivityEvent.objects.get(verb="alias.removed").changes == {"version": [1, None]}


def test_it_reviews_alias_requests_like_stage_requests(model, alice, bob, champion, v2):
    request = alias_request_create(actor=alice, model=model, name="champion", version=v2)
    with pytest.raises(Forbidden, match="your own request"):
        request_approve(actor=alice, request=request)
    with pytest.raises(Conflict, match="already has a pending request"):
        alias_request_create(actor=alice, model=model, name="champion", version=None)
    assert list(StageChangeRequest.objects.reviewable_by(bob)) == [request]
    request_reject(actor=bob, request=request, comment="Not yet.")
    champion.refresh_from_db()
    assert champion.version.number == 1
    again = alias_request_create(actor=alice, model=model, name="champion", version=v2)
    request_cancel(actor=alice, request=again)
    assert not StageChangeRequest.objects.pending().exists()


def test_it_refuses_a_stale_alias_request(model, admin, alice, bob, champion, v2, make_version):
    request = alias_request_create(actor=alice, model=model, name="champion", version=v2)
    alias_set(actor=admin, model=model, name="champion", version=make_version())
    with pytest.raises(Conflict, match="stale"):
        request_approve(actor=bob, request=request)
    assert Alias.objects.get(name="champion").version.number == 3


def test_it_refuses_an_alias_request_that_changes_nothing(model, alice, champion, v1):
    with pytest.raises(Invalid, match="already points at version 1"):
        alias_request_create(actor=alice, model=model, name="champion", version=v1)
    with pytest.raises(NotFound, match="alias nobody"):
        alias_request_create(actor=alice, model=model, name="nobody", version=None)


def test_it_needs_write_to_request_an_alias_move(model, bob, mallory, champion, v2):
    with pytest.raises(Forbidden):
        alias_request_create(actor=bob, model=model, name="champion", version=v2)
    with pytest.raises(NotFound):
        alias_request_create(actor=mallory, model=model, name="champion", version=v2)


def test_it_resolves_model_at_alias(model, admin, alice, carol, mallory, champion, v2):
    assert get_version_by_ref(carol, "acme", "fraud@champion").number == 1
    assert get_version_by_ref(alice, "acme", "fraud", 2) == v2
    alias_set(actor=admin, model=model, name="champion", version=v2)
    assert get_version_by_ref(alice, "acme", "fraud@champion") == v2
    with pytest.raises(NotFound, match="alias nobody of model fraud not found"):
        get_version_by_ref(alice, "acme", "fraud@nobody")
    with pytest.raises(NotFound):
        get_version_by_ref(mallory, "acme", "fraud@champion")
    with pytest.raises(Forbidden):
        get_version_by_ref(carol, "acme", "fraud@champion", need="write")
    with pytest.raises(Invalid):
        get_version_by_ref(alice, "acme", "fraud")
    with pytest.raises(Invalid):
        get_version_by_ref(alice, "acme", "fraud@champion", 2)


def test_it_refuses_to_delete_a_version_a_protected_alias_points_at(model, alice, champion, v1):
    from registry.services.versions import version_delete

    events = ActivityEvent.objects.count()
    with pytest.raises(Conflict, match="protected alias champion points at version 1"):
        version_delete(actor=alice, version=v1)
    assert Alias.objects.get(name="champion").version == v1
    assert ActivityEvent.objects.count() == events


def test_it_removes_unprotected_aliases_with_their_events_when_a_version_goes(model, alice, v1, v2):
    from registry.services.versions import version_delete

    alias_set(actor=alice, model=model, name="candidate", version=v2)
    alias_set(actor=alice, model=model, name="shadow", version=v2)
    version_delete(actor=alice, version=v2)
    assert not Alias.objects.filter(model=model).exists()
    verbs = list(
        ActivityEvent.objects.filter(model_id=model.pk)
        .order_by("seq")
        .values_list("verb", "data__alias")
    )[-3:]
    assert verbs == [
        ("alias.removed", "candidate"),
        ("alias.removed", "shadow"),
        ("version.deleted", None),
    ]
