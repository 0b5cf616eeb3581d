"""Aliases on the version page (SPEC 2, 3.4, 4.1): set, move and remove one; a protected
one is moved or removed through a review request, which shows among the pending approvals
like a stage request; `.../versions/@alias/` names the version it points at."""

import pytest
from django.urls import reverse

from approvals.models import RequestKind, RequestStatus, StageChangeRequest
from approvals.services import alias_request_create, request_create
from registry.models import ActivityEvent, Alias
from registry.services.aliases import alias_protect, alias_set
from registry.services.versions import version_create
from tests.catalog.test_version_page import VERSION_PAGE_QUERIES
from tests.conftest import messages_of

pytestmark = pytest.mark.django_db


def page(version) -> str:
    return reverse("catalog:version", args=["acme", version.model.name, version.number])


def action(version, name: str) -> str:
    return reverse(f"catalog:{name}", args=["acme", version.model.name, version.number])


@pytest.fixture
def v1(model, alice):
    return version_create(actor=alice, model=model)


@pytest.fixture
def v2(model, alice, v1):
    return version_create(actor=alice, model=model)


@pytest.fixture
def champion(model, admin, v1):
    """fraud@champion on v1, protected by the org admin."""
    alias_set(actor=admin, model=model, name="champion", version=v1)
    return alias_protect(actor=admin, model=model, name="champion")


def test_it_sets_moves_and_removes_an_alias(alice_client, model, alice, v1, v2):
    response = alice_client.post(action(v1, "alias-set"), {"name": "candidate", "comment": "hi"})
    assert (response.status_code, response["Location"]) == (302, page(v1) + "#aliases")
    assert messages_of(response) == ["@candidate points at version 1."]
    alice_client.post(action(v2, "alias-set"), {"name": "candidate"})
    assert Alias.objects.get(name="candidate").version == v2
    alice_client.post(action(v2, "alias-remove"), {"name": "candidate"})
    assert not Alias.objects.exists()
    events = ActivityEvent.objects.filter(verb__startswith="alias.").order_by("seq")
    assert [(e.verb, e.actor, e.changes["version"]) for e in events] == [
        ("alias.set", alice, [None, 1]),
        ("alias.moved", alice, [1, 2]),
        ("alias.removed", alice, [2, None]),
    ]
    assert events[0].data["comment"] == "hi"


def test_it_shows_the_models_aliases_and_what_a_writer_may_do(alice_client, model, alice, v1, v2):
    alias_set(actor=alice, model=model, name="candidate", version=v1)
    body = alice_client.get(page(v2)).content.decode()
    assert 'id="aliases"' in body and "@candidate" in body
    assert "Move here" in body and "Request move here" not in body
    assert action(v2, "alias-set") in body
    here = alice_client.get(page(v1)).content.decode()
    assert "this version" in here and ">Remove<" in here
    assert 'class="badge alias"' in here  # the badge beside the stage


def test_it_offers_a_writer_the_request_for_a_protected_alias(alice_client, champion, v2):
    body = alice_client.get(page(v2)).content.decode()
    assert "Request move here" in body and "Move here<" not in body.replace("Request move here", "")
    assert action(v2, "alias-request") in body
    removal = alice_client.get(page(champion.version)).content.decode()
    assert "Request removal" in removal


def test_it_tells_a_writer_that_sets_a_protected_alias_to_request_it(alice_client, champion, v2):
    response = alice_client.post(action(v2, "alias-set"), {"name": "champion"})
    assert response.status_code == 302
    assert "request the change for review" in messages_of(response)[0]
    assert Alias.objects.get(name="champion").version == champion.version


def test_it_requests_a_protected_alias_move_and_reviewers_apply_it(
    alice_client, bob_client, model, champion, v2, alice
):
    response = alice_client.post(
        action(v2, "alias-request"),
        {"name": "champion", "action": "move", "comment": "v2 wins the A/B test"},
    )
    assert response.status_code == 302
    change = StageChangeRequest.objects.get()
    assert (change.kind, change.version, change.alias_from, change.requester) == (
        RequestKind.ALIAS_MOVE,
        v2,
        champion.version,
        alice,
    )
    assert messages_of(response) == [
        f"Requested pointing @champion at version 2 (request #{change.pk}); reviewers are asked."
    ]
    event = ActivityEvent.objects.filter(verb="stage.requested").get()
    assert (event.actor, event.data["alias"], event.data["kind"]) == (
        alice,
        "champion",
        "alias_move",
    )

    # Like a stage request: in bob's queue, on the model's approvals tab, on the version page.
    queue = bob_client.get(reverse("approvals:pending")).content.decode()
    assert f"#{change.pk}" in queue and "@champion" in queue
    tab = bob_client.get(reverse("catalog:model", args=["acme", "fraud"]) + "?tab=approvals")
    assert [r.pk for r in tab.context["page"]] == [change.pk]
    on_page = bob_client.get(page(v2))
    assert [r.pk for r in on_page.context["alias_requests"]] == [change.pk]
    assert on_page.context["alias_requests"][0].can_review
    body = on_page.content.decode()
    assert "point alias @champion at v2" in body
    assert reverse("approvals:approve", args=[change.pk]) in body
    # The stage selector stays: an alias request is not a pending stage change.
    assert on_page.context["pending"] is None
    requester_view = alice_client.get(page(v2)).content.decode()
    assert "Change stage" in requester_view and "Waiting for review" in requester_view

    bob_client.post(reverse("approvals:approve", args=[change.pk]), {"comment": "agreed"})
    assert Alias.objects.get(name="champion").version == v2
    change.refresh_from_db()
    assert change.status == RequestStatus.APPROVED


def test_it_requests_a_protected_alias_removal(alice_client, champion):
    response = alice_client.post(
        action(champion.version, "alias-request"), {"name": "champion", "action": "remove"}
    )
    assert messages_of(response)[0].startswith("Requested removing @champion")
    assert StageChangeRequest.objects.get().kind == RequestKind.ALIAS_REMOVE
    assert Alias.objects.filter(name="champion").exists()


def test_it_lets_an_org_admin_move_a_protected_alias_at_once(admin_client, champion, v2):
    body = admin_client.get(page(v2)).content.decode()
    assert "Move here" in body and "Request move here" not in body
    admin_client.post(action(v2, "alias-set"), {"name": "champion"})
    assert Alias.objects.get(name="champion").version == v2


def test_it_refuses_a_second_request_for_an_alias(alice_client, champion, v2, alice):
    alias_request_create(actor=alice, model=champion.model, name="champion", version=v2)
    response = alice_client.post(
        action(champion.version, "alias-request"), {"name": "champion", "action": "remove"}
    )
    assert "already has a pending request" in messages_of(response)[0]
    assert StageChangeRequest.objects.count() == 1


def test_it_refuses_a_viewer_and_shows_no_controls(carol_client, champion, v2):
    body = carol_client.get(page(v2)).content.decode()
    assert "@champion" in body and 'id="alias-set-form"' not in body and "Move here" not in body
    for name, data in (
        ("alias-set", {"name": "candidate"}),
        ("alias-remove", {"name": "champion"}),
        ("alias-request", {"name": "champion", "action": "move"}),
    ):
        response = carol_client.post(action(v2, name), data)
        assert messages_of(response)[-1] == "you do not have write permission on model fraud"
    assert list(Alias.objects.values_list("name", "version")) == [("champion", champion.version_id)]
    assert not StageChangeRequest.objects.exists()


def test_it_hides_the_model_from_an_outsider(mallory_client, champion, v2):
    for name in ("alias-set", "alias-remove", "alias-request"):
        assert mallory_client.post(action(v2, name), {"name": "champion"}).status_code == 404
    assert (
        mallory_client.get(
            reverse("catalog:version-by-alias", args=["acme", "fraud", "champion"])
        ).status_code
        == 404
    )


def test_it_refuses_get_on_the_alias_forms(alice_client, v1):
    for name in ("alias-set", "alias-remove", "alias-request"):
        assert alice_client.get(action(v1, name)).status_code == 405


def test_it_names_a_bad_alias_name(alice_client, v1):
    response = alice_client.post(action(v1, "alias-set"), {"name": "42"})
    assert "read as a version number" in messages_of(response)[0]
    assert not Alias.objects.exists()


# `@alias` in the page's address


def test_it_opens_the_version_an_alias_names(carol_client, champion, v2):
    by_alias = reverse("catalog:version-by-alias", args=["acme", "fraud", "champion"])
    assert by_alias == "/orgs/acme/models/fraud/versions/@champion/"
    response = carol_client.get(by_alias)
    assert (response.status_code, response["Location"]) == (302, page(champion.version))
    deeper = carol_client.get(by_alias + "documentation/", {"format": "md"})
    assert deeper["Location"] == page(champion.version) + "documentation/?format=md"
    missing = reverse("catalog:version-by-alias", args=["acme", "fraud", "nobody"])
    assert carol_client.get(missing).status_code == 404


def test_it_shows_the_alias_in_the_python_snippet(carol_client, champion):
    body = carol_client.get(page(champion.version)).content.decode()
    assert 'client.get_version("fraud@champion")' in body


@pytest.mark.parametrize("aliases", [5, 50])
def test_it_keeps_the_version_pages_query_count_flat_with_aliases(
    alice_client, model, alice, admin, aliases, django_assert_num_queries
):
    v1 = version_create(actor=alice, model=model)
    v2 = version_create(actor=alice, model=model)
    for index in range(aliases):
        alias_set(actor=admin, model=model, name=f"alias-{index:02d}", version=v1)
        alias_protect(actor=admin, model=model, name=f"alias-{index:02d}")
    for index in range(3):
        alias_request_create(actor=alice, model=model, name=f"alias-{index:02d}", version=v2)
    request_create(actor=alice, version=v2, to_stage="staging")
    # One more than a page without alias requests: their reviews, read in one query.
    with django_assert_num_queries(VERSION_PAGE_QUERIES + 1):
        response = alice_client.get(page(v2))
    assert len(response.context["model_aliases"]) == aliases
    assert len(response.context["alias_requests"]) == 3
