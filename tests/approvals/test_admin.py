"""The admin console: requests and reviews shown view-only, aliases changed through the
alias services (SPEC 1, 3.4)."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from approvals.models import RequestStatus, Review, StageChangeRequest
from approvals.services import request_approve, request_create
from registry.demo import ensure_shared_model
from registry.models import ActivityEvent, Alias, Stage
from registry.services.aliases import alias_protect, alias_set
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(version, alice, bob) -> StageChangeRequest:
    request = request_create(
        actor=alice, version=version, to_stage=Stage.STAGING, comment="Ready for staging."
    )
    request_approve(actor=bob, request=request, comment="Fine by me.")
    return request


def _url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


@pytest.mark.parametrize("who", ["admin_client", "root_client"])
def test_it_shows_requests_and_reviews(request, reviewed, who):
    client = request.getfixturevalue(who)
    listing = client.get(_url("approvals_stagechangerequest_changelist"))
    assert listing.status_code == 200
    assert str(reviewed) in listing.text
    page = client.get(_url("approvals_stagechangerequest_change", reviewed.pk))
    assert page.status_code == 200
    assert "Ready for staging." in page.text
    assert "Fine by me." in page.text  # the reviews, inline
    review = Review.objects.get()
    assert client.get(_url("approvals_review_change", review.pk)).status_code == 200
    assert client.get(_url("approvals_review_changelist")).status_code == 200
    history = client.get(_url("approvals_stagechangerequest_history", reviewed.pk))
    assert history.status_code == 200


@pytest.mark.parametrize("who", ["admin_client", "root_client"])
def test_it_refuses_to_change_requests_and_reviews(request, reviewed, version, who):
    client = request.getfixturevalue(who)
    review = Review.objects.get()
    attempts = [
        _url("approvals_stagechangerequest_change", reviewed.pk),
        _url("approvals_stagechangerequest_add"),
        _url("approvals_stagechangerequest_delete", reviewed.pk),
        _url("approvals_review_change", review.pk),
        _url("approvals_review_add"),
        _url("approvals_review_delete", review.pk),
    ]
    form = {"status": "cancelled", "comment": "edited", "post": "yes", "decision": "reject"}
    for url in attempts:
        assert client.post(url, form).status_code == 403, url
    assert client.get(_url("approvals_stagechangerequest_add")).status_code == 403
    reviewed.refresh_from_db()
    assert (reviewed.status, reviewed.comment) == (RequestStatus.APPROVED, "Ready for staging.")
    assert Review.objects.get().decision == "approve"
    # The changelist's "delete selected" action is not offered either.
    listing = reverse("admin:approvals_stagechangerequest_changelist")
    response = client.post(
        listing, {"action": "delete_selected", "_selected_action": [reviewed.pk], "post": "yes"}
    )
    assert StageChangeRequest.objects.filter(pk=reviewed.pk).exists()
    assert response.status_code in (200, 302)


def test_it_shows_staff_only_the_requests_of_orgs_they_administer(reviewed, mallory):
    mallory.is_staff = True
    mallory.save()
    client = Client()
    client.force_login(mallory)
    listing = client.get(_url("approvals_stagechangerequest_changelist"))
    assert listing.status_code == 200
    assert str(reviewed) not in listing.text
    page = client.get(_url("approvals_stagechangerequest_change", reviewed.pk))
    assert page.status_code == 404
    assert client.get(_url("approvals_review_change", Review.objects.get().pk)).status_code == 404


def test_it_keeps_the_console_from_members_who_are_not_org_admins(reviewed, carol):
    carol.is_staff = True  # staff, but an ordinary member of acme
    carol.save()
    client = Client()
    client.force_login(carol)
    assert client.get(_url("approvals_stagechangerequest_changelist")).status_code == 403
    assert client.get(_url("registry_alias_changelist")).status_code == 403


def test_it_sets_and_protects_an_alias_through_the_service(admin_client, admin, model, version):
    response = admin_client.post(
        _url("registry_alias_add"),
        {"model": model.pk, "name": "champion", "version": version.pk, "protected": "on"},
    )
    assert response.status_code == 302, response.text
    alias = Alias.objects.get()
    assert (alias.name, alias.version, alias.protected, alias.created_by) == (
        "champion",
        version,
        True,
        admin,
    )
    events = ActivityEvent.objects.filter(verb__startswith="alias.").order_by("seq")
    assert [(e.verb, e.actor) for e in events] == [
        ("alias.set", admin),
        ("alias.protected", admin),
    ]


def test_it_moves_and_removes_a_protected_alias_through_the_service(
    admin_client, admin, model, make_version
):
    v1, v2 = make_version(), make_version()
    alias_set(actor=admin, model=model, name="champion", version=v1)
    alias = alias_protect(actor=admin, model=model, name="champion")
    response = admin_client.post(
        _url("registry_alias_change", alias.pk), {"version": v2.pk, "protected": "on"}
    )
    assert response.status_code == 302, response.text
    alias.refresh_from_db()
    assert alias.version == v2
    moved = ActivityEvent.objects.get(verb="alias.moved")
    assert (moved.actor, moved.changes) == (admin, {"version": [1, 2]})

    response = admin_client.post(_url("registry_alias_delete", alias.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Alias.objects.exists()
    assert ActivityEvent.objects.get(verb="alias.removed").actor == admin


def test_it_shows_a_refusal_as_a_message(cast, admin_client, model, alice):
    other = version_create(actor=alice, model=ensure_shared_model(cast, "churn"))
    response = admin_client.post(
        _url("registry_alias_add"), {"model": model.pk, "name": "champion", "version": other.pk}
    )
    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("not a version of fraud" in m for m in messages), messages
    assert not Alias.objects.exists()
    assert not ActivityEvent.objects.filter(verb__startswith="alias.").exists()
