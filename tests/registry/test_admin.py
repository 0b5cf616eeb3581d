"""The admin console (SPEC 1): org admins change state only through the services, under
the lock rules of SPEC 3.2, and see only their own organizations."""

import io
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.forms import CheckboxInput
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.models import (
    ActivityEvent,
    Artifact,
    LockLevel,
    Membership,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    ModelVersion,
    Organization,
    RegisteredModel,
    Role,
    Team,
)
from registry.services.comments import comment_add
from registry.services.orgs import org_update, team_create
from registry.services.registered_models import model_create
from registry.services.versions import version_create

User = get_user_model()

ACTORS = ["admin", "root"]  # an org admin, and a superuser
NEXT = {LockLevel.OPEN: LockLevel.REDACT, LockLevel.REDACT: LockLevel.CLOSED}
PREVIOUS = {LockLevel.REDACT: LockLevel.OPEN, LockLevel.CLOSED: LockLevel.REDACT}


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:registry_{name}", args=args)


def _values(form) -> dict:
    """What a browser sends for a form as rendered: each field's initial value."""
    data = {}
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        value = form[name].value()
        if isinstance(field.widget, CheckboxInput):
            if value:
                data[key] = "on"
        elif isinstance(value, (list, tuple)):
            data[key] = [str(item) for item in value]
        elif value is not None:
            data[key] = str(value)
    return data


class AdminPage:
    """An admin change (or add) page, submitted as a browser would: the form and its inline
    formsets (management forms included) with the values they were rendered with, plus the
    changes a test makes."""

    def __init__(self, client: Client, url: str):
        self.client = client
        self.url = url
        self.response = client.get(url)
        assert self.response.status_code == 200, self.response.status_code
        context = self.response.context
        self.form = context["adminform"].form
        self.formsets = {
            inline.formset.prefix: inline.formset for inline in context["inline_admin_formsets"]
        }
        self.data = {"_save": "Save", **_values(self.form)}
        for formset in self.formsets.values():
            self.data.update(_values(formset.management_form))
            for form in formset.forms:
                self.data.update(_values(form))

    def offers(self, field: str) -> bool:
        return field in self.form.fields

    def row(self, formset: str, **match) -> str:
        """The prefix of the formset's existing row whose object has these attributes."""
        for form in self.formsets[formset].initial_forms:
            if all(getattr(form.instance, name) == value for name, value in match.items()):
                return form.prefix
        raise LookupError(match)

    def blank_row(self, formset: str) -> str:
        return self.formsets[formset].extra_forms[0].prefix

    def submit(self, changes: dict | None = None):
        """POST the page with `changes` (None: leave the field out, as an unticked box)."""
        data = {**self.data, **(changes or {})}
        data = {key: value for key, value in data.items() if value is not None}
        return self.client.post(self.url, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def assert_refused(response, reason: str) -> None:
    """Refused with the service's reason on the page: a redirect back, no error page."""
    assert response.redirect_chain, "a refusal redirects back to the page"
    assert response.redirect_chain[0][1] == 302
    assert response.status_code == 200
    assert any(reason in message for message in messages_of(response)), messages_of(response)


def last_event(org: Organization) -> ActivityEvent:
    return ActivityEvent.objects.filter(org=org).order_by("-seq").first()


def snapshot(version: ModelVersion) -> dict:
    """All a refused request must leave as it was."""
    return {
        "row": ModelVersion.objects.filter(pk=version.pk).values().first(),
        "artifacts": sorted(
            Artifact.objects.filter(version_id=version.pk).values_list("path", "blob_id")
        ),
        "history": ModelVersion.history.filter(id=version.pk).count(),
        "artifact_history": Artifact.history.filter(version_id=version.pk).count(),
        "events": ActivityEvent.objects.count(),
        "admin_log": LogEntry.objects.count(),
    }


@pytest.fixture
def staff():
    def make(user):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def version_at(admin, model):
    def make(level: str) -> ModelVersion:
        return version_create(
            actor=admin,
            model=model,
            lock_level=level,
            framework="sklearn",
            params={"lr": 0.1},
            metrics={"auc": 0.9},
            tags={"team": "risk"},
            artifacts={"a.bin": io.BytesIO(b"a"), "b.bin": io.BytesIO(b"b")},
        )

    return make


# The lock matrix of SPEC 3.2, through the console: each operation as a browser does it.


def edit_ingredient(client, version):
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    # A closed version's ingredients are shown read-only; the value is posted regardless,
    # as a form rendered before it closed would.
    assert page.offers("params") is not version.is_closed
    return page.submit({"params": json.dumps({"lr": 0.2})})


def remove_artifact(client, version):
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    assert page.formsets["artifacts"].can_delete is not version.is_closed
    return page.submit({f"{page.row('artifacts', path='a.bin')}-DELETE": "on"})


def delete_version(client, version):
    return client.post(admin_url("modelversion_delete", version.pk), {"post": "yes"}, follow=True)


def edit_metadata(client, version):
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    return page.submit({"description": "recalibrated", "tags": json.dumps({"team": "fraud"})})


def raise_level(client, version):
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    return page.submit({"lock_level": NEXT[version.lock_level]})


def lower_level(client, version):
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    return page.submit({"lock_level": PREVIOUS[version.lock_level]})


def _ingredient_edited(version, before):
    version.refresh_from_db()
    assert version.params == {"lr": 0.2}
    assert version.digest != before["row"]["digest"]
    return "version.updated"


def _artifact_removed(version, before):
    assert list(version.artifacts.values_list("path", flat=True)) == ["b.bin"]
    version.refresh_from_db()
    assert version.digest != before["row"]["digest"]
    return "artifact.removed"


def _version_deleted(version, before):
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    return "version.deleted"


def _metadata_edited(version, before):
    version.refresh_from_db()
    assert (version.description, version.tags) == ("recalibrated", {"team": "fraud"})
    assert version.digest == before["row"]["digest"]  # free metadata is not an ingredient
    return "version.updated"


def _raised(version, before):
    old = before["row"]["lock_level"]
    version.refresh_from_db()
    assert version.lock_level == NEXT[old]
    return "lock.raised"


def _lowered(version, before):
    old = before["row"]["lock_level"]
    version.refresh_from_db()
    assert version.lock_level == PREVIOUS[old]
    return "lock.lowered"


OPERATIONS = {
    # operation: (how, the levels at which an org admin or a superuser may, what it did)
    "edit an ingredient": (edit_ingredient, {"open", "redact"}, _ingredient_edited),
    "remove an artifact": (remove_artifact, {"open", "redact"}, _artifact_removed),
    "delete the version": (delete_version, {"open", "redact"}, _version_deleted),
    "edit free metadata": (edit_metadata, {"open", "redact", "closed"}, _metadata_edited),
    "raise the level": (raise_level, {"open", "redact"}, _raised),
    "lower the level": (lower_level, {"redact", "closed"}, _lowered),
}
MATRIX = [
    (level, operation)
    for level in LockLevel.values
    for operation in OPERATIONS
    # Nothing is above closed, nothing below open.
    if (level, operation) not in {("closed", "raise the level"), ("open", "lower the level")}
]


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("level, operation", MATRIX)
def test_it_applies_the_lock_matrix_in_the_console(
    request, acme, version_at, actor, level, operation
):
    client = request.getfixturevalue(f"{actor}_client")
    user = request.getfixturevalue(actor)
    version = version_at(level)
    act, allowed_at, check = OPERATIONS[operation]
    before = snapshot(version)

    response = act(client, version)

    assert response.status_code == 200
    if level in allowed_at:
        assert not any("closed" in message for message in messages_of(response))
        verb = check(version, before)
        event = last_event(acme)
        assert (event.verb, event.actor) == (verb, user)
    else:
        assert_refused(response, f"version {version.number} of fraud is closed: nobody may")
        assert snapshot(version) == before


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ACTORS)
def test_it_never_lowers_a_closed_version_in_compliance_mode(
    request, admin, acme, version_at, actor
):
    org_update(actor=admin, org=acme, closed_is_final=True)
    client = request.getfixturevalue(f"{actor}_client")
    version = version_at(LockLevel.CLOSED)
    page = AdminPage(client, admin_url("modelversion_change", version.pk))
    assert not page.offers("lock_level")
    before = snapshot(version)

    response = page.submit({"lock_level": LockLevel.REDACT})  # as a stale or forged form

    assert_refused(response, "compliance mode: a closed version can never be lowered, by anyone")
    assert snapshot(version) == before


@pytest.mark.django_db
def test_it_still_lowers_a_redacted_version_in_compliance_mode(
    admin, admin_client, acme, version_at
):
    org_update(actor=admin, org=acme, closed_is_final=True)
    version = version_at(LockLevel.REDACT)

    lower_level(admin_client, version)

    version.refresh_from_db()
    assert version.lock_level == LockLevel.OPEN
    assert last_event(acme).changes == {"lock_level": ["redact", "open"]}


@pytest.mark.django_db
def test_it_edits_then_closes_in_one_submission(admin_client, acme, version_at):
    version = version_at(LockLevel.OPEN)
    page = AdminPage(admin_client, admin_url("modelversion_change", version.pk))

    page.submit({"metrics": json.dumps({"auc": 0.95}), "lock_level": LockLevel.CLOSED})

    version.refresh_from_db()
    assert (version.metrics, version.lock_level) == ({"auc": 0.95}, LockLevel.CLOSED)
    verbs = ActivityEvent.objects.filter(org=acme).order_by("-seq").values_list("verb", flat=True)
    assert list(verbs[:2]) == ["lock.raised", "version.updated"]


@pytest.mark.django_db
def test_it_shows_a_closed_version_without_delete_and_says_why_at_once(admin_client, version_at):
    version = version_at(LockLevel.CLOSED)
    page = AdminPage(admin_client, admin_url("modelversion_change", version.pk))
    assert page.response.context["show_delete"] is False

    response = admin_client.get(admin_url("modelversion_delete", version.pk), follow=True)

    assert_refused(response, "is closed: nobody may delete it")
    assert response.redirect_chain[-1][0] == admin_url("modelversion_change", version.pk)


@pytest.mark.django_db
def test_it_deletes_selected_versions_all_or_none(admin_client, acme, model, version_at):
    open_version, closed_version = version_at(LockLevel.OPEN), version_at(LockLevel.CLOSED)
    before = snapshot(open_version)
    changelist = admin_url("modelversion_changelist")

    response = admin_client.post(
        changelist,
        {
            "action": "delete_selected",
            "_selected_action": [open_version.pk, closed_version.pk],
            "post": "yes",
        },
        follow=True,
    )

    assert_refused(response, f"version {closed_version.number} of fraud is closed")
    assert ModelVersion.objects.filter(model=model).count() == 2
    assert snapshot(open_version) == before

    admin_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [open_version.pk], "post": "yes"},
    )
    assert list(ModelVersion.objects.filter(model=model)) == [closed_version]
    assert last_event(acme).verb == "version.deleted"


# Who may use the console.


@pytest.mark.django_db
@pytest.mark.parametrize("level", LockLevel.values)
def test_it_refuses_the_console_to_a_writer_who_is_not_an_org_admin(
    alice, alice_client, staff, version_at, level
):
    staff(alice)
    version = version_at(level)
    before = snapshot(version)
    change = admin_url("modelversion_change", version.pk)

    assert alice_client.get(change).status_code == 403
    assert alice_client.post(change, {"description": "mine"}).status_code == 403
    response = alice_client.post(admin_url("modelversion_delete", version.pk), {"post": "yes"})
    assert response.status_code == 403
    assert alice_client.get(admin_url("modelversion_changelist")).status_code == 403
    assert snapshot(version) == before


@pytest.mark.django_db
def test_it_shows_nothing_to_staff_who_administer_no_org(carol, carol_client, staff, model):
    staff(carol)

    index = carol_client.get(reverse("admin:index"))

    assert index.status_code == 200
    assert index.context["app_list"] == []
    for name in ("registeredmodel", "organization", "activityevent", "team"):
        assert carol_client.get(admin_url(f"{name}_changelist")).status_code == 403
    assert carol_client.get(admin_url("registeredmodel_change", model.pk)).status_code == 403


@pytest.mark.django_db
def test_it_refuses_the_console_to_users_who_are_not_staff(alice_client, model):
    response = alice_client.get(admin_url("registeredmodel_change", model.pk))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_it_hides_other_orgs_from_an_org_admin(mallory, mallory_client, staff, acme, version_at):
    staff(mallory)
    version = version_at(LockLevel.OPEN)
    blob = version.artifacts.first().blob_id
    comment = comment_add(actor=version.model.owner, model=version.model, body="hi")
    before = snapshot(version)

    listed = mallory_client.get(admin_url("modelversion_changelist"))
    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == []
    orgs = mallory_client.get(admin_url("organization_changelist")).context["cl"].result_list
    assert [org.slug for org in orgs] == ["globex"]
    for url in (
        admin_url("modelversion_change", version.pk),
        admin_url("modelversion_history", version.pk),
        admin_url("modelversion_delete", version.pk),
        admin_url("registeredmodel_change", version.model.pk),
        admin_url("organization_change", acme.pk),
        admin_url("comment_change", comment.pk),
        admin_url("blob_change", blob),
        admin_url("activityevent_change", last_event(acme).pk),
    ):
        assert mallory_client.get(url).status_code == 404, url
    response = mallory_client.post(admin_url("modelversion_delete", version.pk), {"post": "yes"})
    assert response.status_code == 404
    mallory_client.post(
        admin_url("modelversion_changelist"),
        {"action": "delete_selected", "_selected_action": [version.pk], "post": "yes"},
    )
    assert snapshot(version) == before


# Read-only records.


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ACTORS)
def test_it_keeps_activity_events_view_only_for_everyone(request, acme, model, actor):
    client = request.getfixturevalue(f"{actor}_client")
    event = last_event(acme)
    stored = ActivityEvent.objects.filter(pk=event.pk).values().get()
    count = ActivityEvent.objects.count()
    change = admin_url("activityevent_change", event.pk)

    page = client.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(change, {"verb": "model.forged"}).status_code == 403
    assert client.get(admin_url("activityevent_delete", event.pk)).status_code == 403
    assert (
        client.post(admin_url("activityevent_delete", event.pk), {"post": "yes"}).status_code == 403
    )
    assert client.get(admin_url("activityevent_add")).status_code == 403
    listed = client.get(admin_url("activityevent_changelist"))
    assert listed.context["action_form"] is None  # no "delete selected"
    client.post(
        admin_url("activityevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert ActivityEvent.objects.count() == count
    assert ActivityEvent.objects.filter(pk=event.pk).values().get() == stored


@pytest.mark.django_db
def test_it_shows_comments_and_blobs_read_only(admin_client, alice, model, version_at):
    version = version_at(LockLevel.OPEN)
    comment = comment_add(actor=alice, model=model, version=version, body="looks good")
    blob = version.artifacts.get(path="a.bin").blob_id

    assert admin_client.get(admin_url("comment_change", comment.pk)).status_code == 200
    response = admin_client.post(admin_url("comment_change", comment.pk), {"body": "edited"})
    assert response.status_code == 403
    assert (
        admin_client.post(admin_url("comment_delete", comment.pk), {"post": "yes"}).status_code
        == 403
    )
    assert admin_client.get(admin_url("blob_change", blob)).status_code == 200
    assert admin_client.post(admin_url("blob_delete", blob), {"post": "yes"}).status_code == 403
    comment.refresh_from_db()
    assert comment.body == "looks good"
    assert version.artifacts.count() == 2


@pytest.mark.django_db
def test_it_shows_history_but_never_reverts(admin, admin_client, model, version_at):
    version = version_at(LockLevel.OPEN)
    edit_metadata(admin_client, version)
    record = ModelVersion.history.filter(id=version.pk).order_by("history_date").first()

    history = admin_client.get(admin_url("modelversion_history", version.pk))
    assert history.status_code == 200
    assert len(history.context["page_obj"].object_list) == 2
    revert = admin_url("modelversion_simple_history", version.pk, record.history_id)
    assert admin_client.get(revert).status_code == 200
    page = AdminPage(admin_client, admin_url("modelversion_change", version.pk))
    assert admin_client.post(revert, page.data).status_code == 403
    version.refresh_from_db()
    assert version.description == "recalibrated"


# Organizations, members and teams.


@pytest.mark.django_db
def test_it_changes_org_settings_through_the_service(admin, admin_client, acme):
    page = AdminPage(admin_client, admin_url("organization_change", acme.pk))

    page.submit({"required_approvals": "2", "default_lock_level": LockLevel.REDACT})

    acme.refresh_from_db()
    assert (acme.required_approvals, acme.default_lock_level) == (2, LockLevel.REDACT)
    event = last_event(acme)
    assert (event.verb, event.actor) == ("settings.changed", admin)
    assert event.changes["required_approvals"] == [1, 2]


@pytest.mark.django_db
def test_it_refuses_to_leave_compliance_mode(admin, admin_client, acme):
    org_update(actor=admin, org=acme, closed_is_final=True)
    page = AdminPage(admin_client, admin_url("organization_change", acme.pk))
    history = acme.history.count()
    events = ActivityEvent.objects.count()

    response = page.submit({"closed_is_final": None, "name": "Acme Renamed"})

    assert_refused(response, "compliance mode cannot be turned off once on")
    acme.refresh_from_db()
    assert (acme.closed_is_final, acme.name) == (True, "Acme Corp")
    assert (acme.history.count(), ActivityEvent.objects.count()) == (history, events)


@pytest.mark.django_db
def test_it_lets_a_superuser_create_an_org_but_not_an_org_admin(root_client, admin_client, admin):
    assert admin_client.get(admin_url("organization_add")).status_code == 403
    page = AdminPage(root_client, admin_url("organization_add"))

    page.submit({"slug": "initech", "name": "Initech", "first_admin": str(admin.pk)})

    org = Organization.objects.get(slug="initech")
    assert Membership.objects.get(org=org).user == admin
    assert last_event(org).verb == "org.created"


@pytest.mark.django_db
def test_it_adds_and_removes_members_through_the_services(admin_client, acme, bob):
    dave = User.objects.create_user("dave")
    page = AdminPage(admin_client, admin_url("organization_change", acme.pk))
    row = page.blank_row("memberships")

    page.submit(
        {
            f"{row}-username": "dave",
            f"{row}-role": Role.ADMIN,
            f"{page.row('memberships', user=bob)}-DELETE": "on",
        }
    )

    assert Membership.objects.get(org=acme, user=dave).role == Role.ADMIN
    assert not Membership.objects.filter(org=acme, user=bob).exists()
    verbs = ActivityEvent.objects.filter(org=acme).order_by("-seq").values_list("verb", flat=True)
    assert list(verbs[:2]) == ["membership.deleted", "membership.created"]


@pytest.mark.django_db
def test_it_refuses_to_remove_the_last_admin(admin, admin_client, acme):
    page = AdminPage(admin_client, admin_url("organization_change", acme.pk))
    events = ActivityEvent.objects.count()

    response = page.submit({f"{page.row('memberships', user=admin)}-DELETE": "on"})

    assert_refused(response, "admin is the last admin of acme")
    assert Membership.objects.get(org=acme, user=admin).role == Role.ADMIN
    assert ActivityEvent.objects.count() == events


@pytest.mark.django_db
def test_it_creates_edits_and_deletes_a_team(admin_client, acme, alice, bob, carol):
    page = AdminPage(admin_client, admin_url("team_add"))
    page.submit({"org": str(acme.pk), "name": "reviewers", "members": [bob.pk, carol.pk]})
    team = Team.objects.get(org=acme, name="reviewers")
    assert set(team.group.user_set.all()) == {bob, carol}

    page = AdminPage(admin_client, admin_url("team_change", team.pk))
    page.submit({"members": [alice.pk]})
    assert list(team.group.user_set.all()) == [alice]
    assert last_event(acme).changes == {"members": [["bob", "carol"], ["alice"]]}

    admin_client.post(admin_url("team_delete", team.pk), {"post": "yes"})
    assert not Team.objects.filter(pk=team.pk).exists()
    verbs = ActivityEvent.objects.filter(org=acme).order_by("-seq").values_list("verb", flat=True)
    assert list(verbs[:4]) == ["team.deleted", "team.updated", "team.updated", "team.created"]


@pytest.mark.django_db
def test_it_refuses_team_members_from_another_org(admin_client, acme, mallory):
    page = AdminPage(admin_client, admin_url("team_add"))

    response = page.submit({"org": str(acme.pk), "name": "outsiders", "members": [mallory.pk]})

    assert response.context["adminform"].form.errors["members"]
    assert not Team.objects.filter(name="outsiders").exists()


# Registered models and their grants.


@pytest.mark.django_db
def test_it_grants_and_revokes_through_the_inline(admin, admin_client, acme, model, alice, carol):
    write = Permission.objects.get(codename=ModelPermission.WRITE)
    page = AdminPage(admin_client, admin_url("registeredmodel_change", model.pk))
    row = page.blank_row("modeluserpermission_set")
    alice_write = page.row("modeluserpermission_set", user=alice, permission=write)

    page.submit(
        {
            f"{row}-user": str(carol.pk),
            f"{row}-permission": str(write.pk),
            f"{alice_write}-DELETE": "on",
        }
    )

    grants = ModelUserPermission.objects.filter(content_object=model, permission=write)
    assert set(grants.values_list("user__username", flat=True)) == {"admin", "carol"}
    granted, revoked = ActivityEvent.objects.filter(org=acme).order_by("-seq")[:2]
    assert (granted.verb, granted.actor, granted.data) == (
        "permission.granted",
        admin,
        {"grantee": "user:carol"},
    )
    assert granted.changes == {"permission": [None, "write"]}
    assert (revoked.verb, revoked.data) == ("permission.revoked", {"grantee": "user:alice"})


@pytest.mark.django_db
def test_it_grants_to_a_team(admin, admin_client, acme, model):
    team = team_create(actor=admin, org=acme, name="scientists")
    approve = Permission.objects.get(codename=ModelPermission.APPROVE)
    page = AdminPage(admin_client, admin_url("registeredmodel_change", model.pk))
    row = page.blank_row("modelgrouppermission_set")

    page.submit({f"{row}-group": str(team.group.pk), f"{row}-permission": str(approve.pk)})

    assert ModelGroupPermission.objects.filter(
        content_object=model, group=team.group, permission=approve
    ).exists()
    assert last_event(acme).data == {"grantee": "team:scientists"}


@pytest.mark.django_db
def test_it_edits_a_model_through_the_service(admin, admin_client, acme, model, bob):
    page = AdminPage(admin_client, admin_url("registeredmodel_change", model.pk))

    page.submit({"description": "Scores card payments", "owner": str(bob.pk)})

    model.refresh_from_db()
    assert (model.description, model.owner) == ("Scores card payments", bob)
    event = last_event(acme)
    assert (event.verb, event.changes["owner"]) == ("model.updated", ["admin", "bob"])


@pytest.mark.django_db
def test_it_creates_a_model_through_the_service(admin, admin_client, acme):
    page = AdminPage(admin_client, admin_url("registeredmodel_add"))

    page.submit({"org": str(acme.pk), "name": "churn", "tags": json.dumps({"team": "growth"})})

    model = RegisteredModel.objects.get(org=acme, name="churn")
    assert (model.owner, model.tags) == (admin, {"team": "growth"})
    assert model.branches.filter(name="main", protected=True).exists()
    assert last_event(acme).verb == "model.created"


@pytest.mark.django_db
def test_it_refuses_to_delete_a_model_that_holds_a_closed_version(root_client, model, version_at):
    version = version_at(LockLevel.CLOSED)
    before = snapshot(version)

    response = root_client.post(
        admin_url("registeredmodel_delete", model.pk), {"post": "yes"}, follow=True
    )

    assert_refused(response, f"model fraud holds closed version {version.number}")
    assert RegisteredModel.objects.filter(pk=model.pk).exists()
    assert snapshot(version) == before


@pytest.mark.django_db
def test_it_deletes_a_model_through_the_service(admin_client, acme, model, alice, version_at):
    version_at(LockLevel.REDACT)
    comment_add(actor=alice, model=model, body="retire it?")

    admin_client.post(admin_url("registeredmodel_delete", model.pk), {"post": "yes"})

    assert not RegisteredModel.objects.filter(pk=model.pk).exists()
    event = last_event(acme)
    assert event.verb == "model.deleted"
    # The log outlives what it names.
    assert admin_client.get(admin_url("activityevent_change", event.pk)).status_code == 200


# Every page renders, and list pages do not grow in queries with their rows.

PAGES = ["organization", "team", "registeredmodel", "modelversion", "comment", "activityevent"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_it_renders_every_page_for_a_superuser(root_client, admin, acme, model, version_at, name):
    version = version_at(LockLevel.REDACT)
    comment = comment_add(actor=admin, model=model, version=version, body="ok")
    team = team_create(actor=admin, org=acme, name="scientists")
    obj = {
        "organization": acme,
        "team": team,
        "registeredmodel": model,
        "modelversion": version,
        "comment": comment,
        "activityevent": last_event(acme),
    }[name]

    assert root_client.get(admin_url(f"{name}_changelist")).status_code == 200
    assert root_client.get(admin_url(f"{name}_change", obj.pk)).status_code == 200
    if name != "activityevent":
        assert root_client.get(admin_url(f"{name}_history", obj.pk)).status_code == 200


def _rows(admin, acme, model, alice, numbers: range) -> None:
    for i in numbers:
        version = version_create(
            actor=admin, model=model, artifacts={f"{i}.bin": io.BytesIO(f"{i}".encode())}
        )
        comment_add(actor=alice, model=model, version=version, body=f"comment {i}")
        model_create(actor=admin, org=acme, name=f"model-{i}")
        team_create(actor=admin, org=acme, name=f"team-{i}")


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*PAGES, "blob"])
def test_it_lists_rows_in_a_fixed_number_of_queries(admin, admin_client, acme, model, alice, name):
    url = admin_url(f"{name}_changelist")
    _rows(admin, acme, model, alice, range(2))
    few = _queries(admin_client, url)

    _rows(admin, acme, model, alice, range(2, 6))

    assert _queries(admin_client, url) == few


@pytest.mark.django_db
def test_it_lists_versions_in_few_queries(admin_client, version_at, django_assert_max_num_queries):
    for level in (*LockLevel.values, *LockLevel.values):
        version_at(level)

    with django_assert_max_num_queries(8):
        response = admin_client.get(admin_url("modelversion_changelist"))

    assert len(response.context["cl"].result_list) == 6


def test_it_lets_superusers_revoke_api_tokens_and_nobody_else_see_them(
    root_client, admin_client, alice
):
    from registry.models import ApiToken
    from registry.services.tokens import token_create

    token, _ = token_create(actor=alice, user=alice, name="ci")
    changelist = reverse("admin:registry_apitoken_changelist")
    assert admin_client.get(changelist).status_code == 403
    page = root_client.get(changelist)
    assert page.status_code == 200
    assert token.hashed not in page.content.decode()
    response = root_client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
