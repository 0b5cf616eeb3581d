"""Registering from the browser (SPEC 4.1): a new model with its tags and sharing, a new
version with its lock level, params, metrics, tags, parents and files. Plain multipart
forms; a refusal is shown on the form and changes nothing."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry.models import (
    ActivityEvent,
    Artifact,
    Blob,
    ModelGroupPermission,
    ModelUserPermission,
    ModelVersion,
    RegisteredModel,
)
from registry.services.aliases import alias_set
from registry.services.branches import branch_create
from registry.services.orgs import org_update, team_create
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

NEW_MODEL = reverse("catalog:model-create", args=["acme"])
NEW_VERSION = reverse("catalog:version-create", args=["acme", "fraud"])
# The same with 5 and with 50 branches (the branch choices) and teams (the suggestions).
NEW_VERSION_QUERIES = 5
NEW_MODEL_QUERIES = 5


def rows(prefix: str, pairs: list[tuple[str, str]], blank: int = 0) -> dict[str, str]:
    """A KeyValueFormSet's fields as a browser sends them."""
    data = {f"{prefix}-TOTAL_FORMS": str(len(pairs) + blank), f"{prefix}-INITIAL_FORMS": "0"}
    for index, (key, value) in enumerate(pairs):
        data[f"{prefix}-{index}-key"] = key
        data[f"{prefix}-{index}-value"] = value
    return data


def shares(entries: list[tuple[str, str, str]]) -> dict[str, str]:
    data = {"share-TOTAL_FORMS": str(len(entries)), "share-INITIAL_FORMS": "0"}
    for index, (who, kind, permission) in enumerate(entries):
        data.update(
            {
                f"share-{index}-who": who,
                f"share-{index}-kind": kind,
                f"share-{index}-permission": permission,
            }
        )
    return data


def model_form(**fields) -> dict[str, str]:
    data = {"name": "churn", "description": "Who leaves", "readme": "", "visibility": "private"}
    data.update(rows("tags", [("team", "nlp")], blank=1))
    data.update(shares([("alice", "user", "write"), ("", "user", "view")]))
    data.update(fields)
    return data


def version_form(**fields) -> dict:
    data = {
        "label": "1.0.0",
        "description": "First cut",
        "readme": "",
        "branch": "main",
        "lock_level": "open",
        "framework": "sklearn",
        "flavor": "",
        "parents": "",
        "folder": "",
        "checksums": "",
        **rows("params", [("lr", "0.01"), ("optimizer", "adam"), ("early_stop", "true")], 1),
        **rows("metrics", [("auc", "0.93")]),
        **rows("tags", [("team", "risk")]),
    }
    data.update(fields)
    return data


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def staging_left() -> list[Path]:
    folder = Path(settings.ARTIFACT_TMP_DIR)
    return sorted(folder.iterdir()) if folder.exists() else []


# A new model


class TestNewModel:
    def test_it_registers_a_model_with_tags_and_grants(self, carol_client, cast, alice):
        response = carol_client.post(NEW_MODEL, model_form())
        assert response.status_code == 302
        assert response["Location"] == reverse("catalog:model", args=["acme", "churn"])
        model = RegisteredModel.objects.get(org=cast.acme, name="churn")
        assert (model.owner, model.visibility, model.tags) == (
            cast.carol,
            "private",
            {"team": "nlp"},
        )
        granted = ModelUserPermission.objects.filter(content_object=model, user=alice)
        assert list(granted.values_list("permission__codename", flat=True)) == [
            "write_registeredmodel"
        ]
        verbs = ActivityEvent.objects.filter(model_id=model.pk).order_by("seq")
        assert [e.verb for e in verbs] == ["model.created", "permission.granted"]
        assert alice_can_view(alice, model)

    def test_it_shares_with_a_team(self, carol_client, cast, admin):
        team = team_create(actor=admin, org=cast.acme, name="risk")
        response = carol_client.post(NEW_MODEL, model_form(**shares([("risk", "team", "approve")])))
        assert response.status_code == 302
        model = RegisteredModel.objects.get(name="churn")
        grant = ModelGroupPermission.objects.get(content_object=model)
        assert (grant.group, grant.permission.codename) == (team.group, "approve_registeredmodel")

    def test_it_shows_a_refusal_on_the_form_and_makes_nothing(self, carol_client, cast):
        events = ActivityEvent.objects.count()
        response = carol_client.post(
            NEW_MODEL, model_form(**shares([("alice", "user", "view"), ("nobody", "user", "view")]))
        )
        assert response.status_code == 400
        page = response.content.decode()
        assert "user nobody not found" in page
        assert 'value="churn"' in page and "Who leaves" in page  # what was typed stays
        assert not RegisteredModel.objects.filter(name="churn").exists()
        assert ActivityEvent.objects.count() == events

    def test_it_rolls_the_model_back_when_a_grant_is_refused(self, carol_client, mallory):
        # mallory exists but is no member of acme: model_grant refuses after model_create.
        response = carol_client.post(NEW_MODEL, model_form(**shares([("mallory", "user", "view")])))
        assert response.status_code == 400
        assert "mallory is not a member of acme" in response.content.decode()
        assert not RegisteredModel.objects.filter(name="churn").exists()

    def test_it_answers_a_taken_name_with_409_on_the_form(self, alice_client, model):
        response = alice_client.post(NEW_MODEL, model_form(name="fraud"))
        assert response.status_code == 409
        assert "model fraud already exists in acme" in response.content.decode()

    def test_it_names_a_bad_name_and_a_repeated_tag(self, alice_client, cast):
        bad = alice_client.post(NEW_MODEL, model_form(name="has space"))
        assert bad.status_code == 400 and "model name" in bad.content.decode()
        twice = alice_client.post(
            NEW_MODEL, model_form(**rows("tags", [("team", "a"), ("team", "b")]))
        )
        assert twice.status_code == 400 and "team is given twice" in twice.content.decode()
        assert not RegisteredModel.objects.filter(name__in=["has space", "churn"]).exists()

    def test_it_adds_rows_without_javascript(self, alice_client, cast):
        response = alice_client.post(NEW_MODEL, {**model_form(), "more": "tags"})
        assert response.status_code == 200
        assert response.context["tags"].total_form_count() == 5
        assert not RegisteredModel.objects.filter(name="churn").exists()
        assert "This field is required" not in response.content.decode()

    def test_it_shows_the_form_and_links_it_from_the_catalog(self, carol_client, cast):
        page = carol_client.get(NEW_MODEL)
        assert page.status_code == 200
        assert b'name="share-0-who"' in page.content and b"forms.js" in page.content
        catalog = carol_client.get(reverse("catalog:catalog", args=["acme"])).content.decode()
        assert NEW_MODEL in catalog

    def test_it_answers_404_to_an_outsider(self, mallory_client, cast):
        assert mallory_client.get(NEW_MODEL).status_code == 404
        assert mallory_client.post(NEW_MODEL, model_form()).status_code == 404
        assert not RegisteredModel.objects.filter(name="churn").exists()

    def test_it_refuses_a_wrong_method(self, alice_client, cast):
        assert alice_client.put(NEW_MODEL).status_code == 405

    @pytest.mark.parametrize("teams", [5, 50])
    def test_it_keeps_its_query_count_flat(
        self, alice_client, cast, admin, teams, django_assert_num_queries
    ):
        for index in range(teams):
            team_create(actor=admin, org=cast.acme, name=f"team-{index:02d}")
        with django_assert_num_queries(NEW_MODEL_QUERIES):
            response = alice_client.get(NEW_MODEL)
        assert len(response.context["team_names"]) == teams


def alice_can_view(alice, model) -> bool:
    from registry.permissions import model_access

    return model_access(alice, model).view


def test_it_points_the_empty_catalog_to_registration_and_the_client(alice_client, cast):
    page = alice_client.get(reverse("catalog:catalog", args=["acme"])).content.decode()
    assert "Register the first model" in page
    assert NEW_MODEL in page
    assert "client.create_registered_model(" in page


def test_it_keeps_the_empty_catalog_hint_off_a_search(alice_client, model):
    page = alice_client.get(reverse("catalog:catalog", args=["acme"]) + "?q=nothing-like-it")
    assert "Register the first model" not in page.content.decode()


# A new version


class TestNewVersion:
    def test_it_registers_a_version_with_its_files(self, alice_client, model, alice):
        weights, config = b"w" * 300_000, b'{"depth": 6}'
        data = version_form(
            folder="weights",
            checksums=f"{hashlib.sha256(weights).hexdigest()}  model.bin\n",
            files=[upload("model.bin", weights), upload("config.json", config)],
        )
        response = alice_client.post(NEW_VERSION, data)
        assert response.status_code == 302
        version = ModelVersion.objects.get(model=model)
        assert response["Location"] == reverse("catalog:version", args=["acme", "fraud", 1])
        assert (version.label, version.lock_level, version.framework) == (
            "1.0.0",
            "open",
            "sklearn",
        )
        assert version.params == {"lr": 0.01, "optimizer": "adam", "early_stop": True}
        assert (version.metrics, version.tags) == ({"auc": 0.93}, {"team": "risk"})
        stored = dict(Artifact.objects.filter(version=version).values_list("path", "blob__sha256"))
        assert stored == {
            "weights/model.bin": hashlib.sha256(weights).hexdigest(),
            "weights/config.json": hashlib.sha256(config).hexdigest(),
        }
        event = ActivityEvent.objects.get(verb="version.created")
        assert (event.actor, event.data["artifacts"]) == (
            alice,
            ["weights/config.json", "weights/model.bin"],
        )
        assert staging_left() == []  # the form's temporary files are gone with the request

    def test_it_registers_a_version_born_closed_with_its_files(self, alice_client, model):
        response = alice_client.post(
            NEW_VERSION, version_form(lock_level="closed", files=[upload("m.bin", b"x")])
        )
        assert response.status_code == 302
        version = ModelVersion.objects.get(model=model)
        assert (version.lock_level, version.artifacts.count()) == ("closed", 1)

    def test_it_refuses_a_checksum_mismatch_and_registers_nothing(self, alice_client, model):
        data = version_form(
            checksums=f"{'0' * 64}  model.bin",
            files=[upload("model.bin", b"weights"), upload("other.bin", b"more")],
        )
        response = alice_client.post(NEW_VERSION, data)
        assert response.status_code == 400
        page = response.content.decode()
        assert "checksum mismatch" in page and 'value="1.0.0"' in page
        assert not ModelVersion.objects.filter(model=model).exists()
        assert (
            not Blob.objects.exists()
            and not ActivityEvent.objects.filter(verb="version.created").exists()
        )
        assert staging_left() == []
        assert not [p for p in Path(settings.ARTIFACT_ROOT).rglob("*") if p.is_file()]

    def test_it_refuses_what_the_service_refuses_on_the_form(self, alice_client, model):
        response = alice_client.post(
            NEW_VERSION,
            version_form(**rows("metrics", [("auc", "high")]), files=[upload("m.bin", b"x")]),
        )
        assert response.status_code == 400
        assert "metrics.auc must be a number" in response.content.decode()
        assert not ModelVersion.objects.exists() and not Blob.objects.exists()

    def test_it_answers_a_taken_label_with_409(self, alice_client, model, alice):
        version_create(actor=alice, model=model, label="1.0.0")
        response = alice_client.post(NEW_VERSION, version_form())
        assert response.status_code == 409
        assert "label 1.0.0 is already used" in response.content.decode()
        assert ModelVersion.objects.count() == 1

    def test_it_refuses_a_file_over_the_limit_before_registering(
        self, alice_client, model, settings
    ):
        settings.ARTIFACT_MAX_SIZE = 1000
        page = reverse("catalog:version-create", args=["acme", "fraud"])
        response = alice_client.post(
            NEW_VERSION, version_form(files=[upload("big.bin", b"x" * 5000)]), HTTP_REFERER=page
        )
        assert (response.status_code, response["Location"]) == (302, page)
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert messages == [
            "big.bin is larger than the limit of 1000 bytes: nothing was registered"
        ]
        assert not ModelVersion.objects.exists()
        assert staging_left() == []

    def test_it_refuses_two_files_of_one_name(self, alice_client, model):
        response = alice_client.post(
            NEW_VERSION, version_form(files=[upload("m.bin", b"a"), upload("m.bin", b"b")])
        )
        assert response.status_code == 400
        assert "two files are named m.bin" in response.content.decode()

    def test_it_names_parents_by_alias_or_number(self, alice_client, model, alice):
        first = version_create(actor=alice, model=model)
        second = version_create(actor=alice, model=model)
        alias_set(actor=alice, model=model, name="champion", version=first)
        response = alice_client.post(
            NEW_VERSION, version_form(parents=f"fraud@champion\nfraud:{second.number}")
        )
        assert response.status_code == 302
        created = ModelVersion.objects.get(model=model, number=3)
        assert sorted(created.parents.values_list("number", flat=True)) == [1, 2]
        missing = alice_client.post(NEW_VERSION, version_form(label="", parents="fraud@nobody"))
        assert missing.status_code == 400
        assert "parent fraud@nobody not found" in missing.content.decode()
        garbled = alice_client.post(NEW_VERSION, version_form(label="", parents="fraud v2"))
        assert garbled.status_code == 400 and "model@alias or model:number" in (
            garbled.content.decode()
        )

    def test_it_offers_levels_below_the_default_to_org_admins_only(
        self, alice_client, admin_client, model, acme, admin
    ):
        org_update(actor=admin, org=acme, default_lock_level="redact")
        offered = alice_client.get(NEW_VERSION).context["form"].fields["lock_level"].choices
        assert [value for value, _ in offered] == ["redact", "closed"]
        assert admin_client.get(NEW_VERSION).context["form"].initial["lock_level"] == "redact"
        offered = admin_client.get(NEW_VERSION).context["form"].fields["lock_level"].choices
        assert [value for value, _ in offered] == ["open", "redact", "closed"]
        refused = alice_client.post(NEW_VERSION, version_form(lock_level="open"))
        assert refused.status_code == 400 and not ModelVersion.objects.exists()
        assert admin_client.post(NEW_VERSION, version_form(lock_level="open")).status_code == 302
        assert ModelVersion.objects.get().lock_level == "open"

    def test_it_registers_on_another_branch(self, alice_client, model, exp):
        response = alice_client.post(NEW_VERSION, version_form(branch="exp"))
        assert response.status_code == 302
        assert ModelVersion.objects.get().branch.name == "exp"

    def test_it_adds_rows_without_javascript_and_asks_for_the_files_again(
        self, alice_client, model
    ):
        response = alice_client.post(
            NEW_VERSION, {**version_form(files=[upload("m.bin", b"x")]), "more": "metrics"}
        )
        assert response.status_code == 200
        assert response.context["rows"]["metrics"].total_form_count() == 4
        assert "choose the files again" in response.content.decode()
        assert not ModelVersion.objects.exists()
        assert staging_left() == []

    def test_it_tells_htmx_where_to_go(self, alice_client, model):
        response = alice_client.post(NEW_VERSION, version_form(), HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert response["HX-Redirect"] == reverse("catalog:version", args=["acme", "fraud", 1])

    def test_it_checks_the_csrf_token(self, alice, model):
        from django.test import Client

        browser = Client(enforce_csrf_checks=True)
        browser.force_login(alice)
        assert browser.post(NEW_VERSION, version_form()).status_code == 403
        assert not ModelVersion.objects.exists()

    def test_it_refuses_a_viewer_and_hides_the_model_from_an_outsider(
        self, carol_client, mallory_client, model
    ):
        assert carol_client.get(NEW_VERSION).status_code == 403
        refused = carol_client.post(NEW_VERSION, version_form(files=[upload("m.bin", b"x")]))
        assert refused.status_code == 302
        assert mallory_client.get(NEW_VERSION).status_code == 404
        assert not ModelVersion.objects.exists()

    def test_it_refuses_a_wrong_method(self, alice_client, model):
        assert alice_client.delete(NEW_VERSION).status_code == 405

    def test_it_is_linked_from_the_model_card_for_writers_only(
        self, alice_client, carol_client, model
    ):
        card = reverse("catalog:model", args=["acme", "fraud"])
        assert NEW_VERSION in alice_client.get(card).content.decode()
        assert NEW_VERSION not in carol_client.get(card).content.decode()

    @pytest.mark.parametrize("branches", [5, 50])
    def test_it_keeps_its_query_count_flat(
        self, alice_client, model, alice, branches, django_assert_num_queries
    ):
        for index in range(branches):
            branch_create(actor=alice, model=model, name=f"exp-{index:02d}")
        with django_assert_num_queries(NEW_VERSION_QUERIES):
            response = alice_client.get(NEW_VERSION)
        assert len(response.context["form"].fields["branch"].choices) == branches + 1


def test_it_writes_every_file_of_the_form_to_disk_not_memory(alice_client, model):
    """Every file of the form goes to a temporary file under ARTIFACT_TMP_DIR, whatever its
    size (Django's default keeps one of up to 2.5 MB in memory), and is gone after."""
    response = alice_client.post(NEW_VERSION, version_form(files=[upload("s.bin", b"small")]))
    assert response.status_code == 302
    [received] = response.wsgi_request.FILES.getlist("files")
    written = Path(received.file.name)
    assert written.parent == Path(settings.ARTIFACT_TMP_DIR)
    assert not written.exists()
