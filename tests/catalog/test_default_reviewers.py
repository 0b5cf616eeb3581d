"""Someone can review (SPEC 3.4): an org's default reviewers, a team granted approve on every
new model, set in the org's settings; and the stage-request form saying who will be asked,
and warning when nobody but the requester could approve."""

import pytest
from django.urls import reverse

from registry.models import ActivityEvent, Organization, RegisteredModel, Stage
from registry.permissions import model_access
from registry.services.orgs import org_update, team_create, team_delete, team_set_members
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.catalog.test_register import model_form

pytestmark = pytest.mark.django_db

SETTINGS = reverse("catalog:org-settings", args=["acme"])
NEW_MODEL = reverse("catalog:model-create", args=["acme"])


@pytest.fixture
def reviewers(acme, admin, bob):
    team = team_create(actor=admin, org=acme, name="reviewers")
    team_set_members(actor=admin, team=team, users=[bob])
    return team


def settings_form(org: Organization, **changes) -> dict:
    data = {
        "name": org.name,
        "default_lock_level": org.default_lock_level,
        "required_approvals": org.required_approvals,
    }
    return {**data, **changes}


def version_page(version, stage: str) -> str:
    args = ["acme", version.model.name, version.number]
    return reverse("catalog:version", args=args) + f"?request={stage}"


def test_it_sets_default_reviewers_in_the_org_settings(admin_client, acme, reviewers):
    response = admin_client.get(SETTINGS)
    page = response.content.decode()
    assert "Default reviewers" in page and ">reviewers</option>" in page
    response = admin_client.post(SETTINGS, settings_form(acme, default_reviewers=reviewers.pk))
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.default_reviewers == reviewers
    event = ActivityEvent.objects.filter(org=acme).latest("seq")
    assert (event.verb, event.changes) == (
        "settings.changed",
        {"default_reviewers": [None, "reviewers"]},
    )


def test_it_refuses_another_orgs_team_and_a_member(
    admin_client, alice_client, acme, globex, admin, mallory
):
    theirs = team_create(actor=mallory, org=globex, name="theirs")
    admin_client.post(SETTINGS, settings_form(acme, default_reviewers=theirs.pk))
    acme.refresh_from_db()
    assert acme.default_reviewers is None
    alice_team = team_create(actor=admin, org=acme, name="alices")
    alice_client.post(SETTINGS, settings_form(acme, default_reviewers=alice_team.pk))
    acme.refresh_from_db()
    assert acme.default_reviewers is None


def test_it_grants_the_default_reviewers_approve_on_a_new_model(acme, admin, carol, reviewers):
    org_update(actor=admin, org=acme, default_reviewers=reviewers)
    model = model_create(actor=carol, org=acme, name="churn")
    bob = reviewers.group.user_set.get()
    assert model_access(bob, model).approve
    event = ActivityEvent.objects.filter(model_id=model.pk).latest("seq")
    assert (event.verb, event.actor, event.data) == (
        "permission.granted",
        carol,
        {"grantee": "team:reviewers"},
    )


def test_it_grants_them_on_a_model_registered_from_the_browser(
    admin, carol_client, acme, reviewers
):
    org_update(actor=admin, org=acme, default_reviewers=reviewers)
    page = carol_client.get(NEW_MODEL).content.decode()
    assert "Team <strong>reviewers</strong>, the default reviewers" in page
    response = carol_client.post(NEW_MODEL, model_form(name="churn"))
    assert response.status_code == 302
    model = RegisteredModel.objects.get(org=acme, name="churn")
    assert model_access(reviewers.group.user_set.get(), model).approve


def test_it_forgets_a_deleted_team_as_default_reviewers(acme, admin, reviewers):
    org_update(actor=admin, org=acme, default_reviewers=reviewers)
    team_delete(actor=admin, team=reviewers)
    acme.refresh_from_db()
    assert acme.default_reviewers is None
    verbs = list(ActivityEvent.objects.filter(org=acme).order_by("-seq")[:2])
    assert [e.verb for e in verbs] == ["team.deleted", "settings.changed"]


def test_it_says_who_will_be_asked_before_a_request(alice_client, model, alice):
    version = version_create(actor=alice, model=model)
    page = alice_client.get(version_page(version, Stage.STAGING)).content.decode()
    assert "Will be asked: <strong>admin</strong>, <strong>bob</strong>." in page
    assert 'id="no-reviewers"' not in page


def test_it_warns_when_nobody_but_the_requester_could_approve(admin_client, acme, admin):
    """A private model of the org's only admin, shared with nobody: no reviewer but them."""
    model = model_create(actor=admin, org=acme, name="solo", visibility="private")
    version = version_create(actor=admin, model=model)
    page = admin_client.get(version_page(version, Stage.STAGING)).content.decode()
    assert 'id="no-reviewers"' in page
    assert "Nobody but you could approve this request" in page
    assert "Will be asked" not in page


def test_it_warns_when_fewer_may_approve_than_are_needed(alice_client, model, alice, admin):
    from registry.services.registered_models import model_update

    model_update(actor=admin, model=model, required_approvals=3)
    version = version_create(actor=alice, model=model)
    page = alice_client.get(version_page(version, Stage.STAGING)).content.decode()
    assert 'id="few-reviewers"' in page
