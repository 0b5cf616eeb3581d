import io

import pytest
from django.urls import reverse

from approvals.models import StageChangeRequest
from approvals.services import request_create
from registry.models import ActivityEvent, Comment, LockLevel
from registry.services.comments import comment_add
from registry.services.versions import version_create, version_set_lock_level

pytestmark = pytest.mark.django_db

# One of them is the view's read of what the caller may do (model_access), after the fetch;
# two are the Aliases panel's (the model's aliases, their pending requests).
VERSION_PAGE_QUERIES = 14


def url(version, name="catalog:version", *extra) -> str:
    return reverse(name, args=["acme", version.model.name, version.number, *extra])


def test_it_shows_ingredients_artifacts_and_the_snippet(alice_client, version):
    page = alice_client.get(url(version))
    body = page.content.decode()
    assert "lr" in body and "0.91" in body
    assert "model.bin" in body and version.artifacts.get().blob_id in body
    assert f".get_version({version.number})" in body
    assert 'class="stage-selector"' in body


def test_it_shows_carol_no_stage_selector_and_no_lock_control(carol_client, version):
    body = carol_client.get(url(version)).content.decode()
    assert "stage-selector" not in body and "lock-control" not in body


def test_it_answers_404_to_an_outsider_and_for_a_missing_version(
    mallory_client, alice_client, version
):
    assert mallory_client.get(url(version)).status_code == 404
    missing = reverse("catalog:version", args=["acme", "fraud", 999])
    assert alice_client.get(missing).status_code == 404


def test_it_warns_when_a_request_skips_a_step(alice_client, version):
    body = alice_client.get(url(version) + "?request=production").content.decode()
    assert "skips a step" in body and 'name="archive_existing"' in body
    body = alice_client.get(url(version) + "?request=development").content.decode()
    assert "skips a step of the flow" not in body and 'name="archive_existing"' not in body


def test_it_sanitises_markdown_in_descriptions_and_comments(alice_client, model, alice):
    payload = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1"> **bold**'
    version = version_create(actor=alice, model=model, description=payload)
    comment_add(actor=alice, model=model, version=version, body=payload)
    body = alice_client.get(url(version)).content.decode()
    assert "<script>window.pwned" not in body
    assert 'onerror="' not in body and "onerror=window" not in body
    # The description, the comment, and the comment again in the activity log.
    assert body.count("<strong>bold</strong>") == 3


class TestStageRequest:
    def post(self, client, version, **data):
        return client.post(url(version, "catalog:version-request-stage"), data)

    def test_it_opens_a_request_with_its_comment(self, alice_client, version):
        response = self.post(alice_client, version, to_stage="staging", comment="ready for QA")
        assert response.status_code == 302
        change = StageChangeRequest.objects.get(version=version)
        assert (change.to_stage, change.comment, change.status) == (
            "staging",
            "ready for QA",
            "pending",
        )
        event = ActivityEvent.objects.get(verb="stage.requested", version_id=version.pk)
        assert event.data["comment"] == "ready for QA"

    def test_it_refuses_get(self, alice_client, version):
        assert alice_client.get(url(version, "catalog:version-request-stage")).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, version):
        assert self.post(mallory_client, version, to_stage="staging").status_code == 404
        assert not StageChangeRequest.objects.exists()

    def test_it_tells_a_viewer_they_may_not(self, carol_client, version):
        response = self.post(carol_client, version, to_stage="staging")
        assert response.status_code == 302
        page = carol_client.get(response["Location"])
        assert "write permission" in page.content.decode()
        assert not StageChangeRequest.objects.exists()

    def test_it_shows_a_conflict_as_a_message(self, alice_client, version, alice):
        request_create(actor=alice, version=version, to_stage="staging")
        response = self.post(alice_client, version, to_stage="development")
        page = alice_client.get(response["Location"])
        assert "already has a pending request" in page.content.decode()


class TestLock:
    def post(self, client, version, **data):
        return client.post(url(version, "catalog:version-lock"), data)

    def test_it_asks_for_confirmation_then_raises(self, alice_client, version):
        assert alice_client.get(url(version, "catalog:version-lock")).status_code == 200
        unconfirmed = self.post(alice_client, version, level="redact")
        assert "Tick the confirmation" in alice_client.get(unconfirmed["Location"]).content.decode()
        version.refresh_from_db()
        assert version.lock_level == LockLevel.OPEN
        self.post(alice_client, version, level="redact", confirm="on")
        version.refresh_from_db()
        assert version.lock_level == LockLevel.REDACT
        event = ActivityEvent.objects.get(verb="lock.raised", version_id=version.pk)
        assert event.changes == {"lock_level": ["open", "redact"]}

    def test_it_refuses_put(self, alice_client, version):
        assert alice_client.put(url(version, "catalog:version-lock")).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, version):
        assert self.post(mallory_client, version, level="closed", confirm="on").status_code == 404

    def test_it_tells_a_viewer_they_may_not(self, carol_client, version):
        response = self.post(carol_client, version, level="closed", confirm="on")
        assert "write permission" in carol_client.get(response["Location"]).content.decode()
        version.refresh_from_db()
        assert version.lock_level == LockLevel.OPEN

    def test_it_lets_only_admins_lower(self, alice_client, admin_client, version, alice):
        version_set_lock_level(actor=alice, version=version, level="redact")
        response = self.post(alice_client, version, level="open", confirm="on")
        assert "needs an org admin" in alice_client.get(response["Location"]).content.decode()
        self.post(admin_client, version, level="open", confirm="on")
        version.refresh_from_db()
        assert version.lock_level == LockLevel.OPEN


class TestComment:
    def post(self, client, version, body="looks good"):
        return client.post(url(version, "catalog:version-comment"), {"body": body})

    def test_it_adds_a_comment(self, carol_client, version, carol):
        # Anyone who views a model joins its discussion.
        response = self.post(carol_client, version)
        assert response.status_code == 302
        assert Comment.objects.get(version=version).author == carol
        assert ActivityEvent.objects.filter(verb="comment.added", version_id=version.pk).exists()

    def test_it_refuses_get(self, alice_client, version):
        assert alice_client.get(url(version, "catalog:version-comment")).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, version):
        assert self.post(mallory_client, version).status_code == 404
        assert not Comment.objects.exists()

    def test_it_refuses_an_empty_comment_with_a_message(self, carol_client, version):
        response = self.post(carol_client, version, body="")
        assert "required" in carol_client.get(response["Location"]).content.decode()
        assert not Comment.objects.exists()


class TestDownload:
    def test_it_streams_an_attachment_with_its_checksum(self, carol_client, version):
        artifact = version.artifacts.get()
        response = carol_client.get(url(version, "catalog:artifact-download", "model.bin"))
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"weights"
        assert response["Content-Type"] == "application/octet-stream"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Checksum-Sha256"] == artifact.blob_id
        assert response["ETag"] == f'"{artifact.blob_id}"'
        assert response["Content-Disposition"].startswith("attachment")

    def test_it_resumes_from_a_range_and_refuses_one_past_the_end(self, carol_client, version):
        download = url(version, "catalog:artifact-download", "model.bin")
        part = carol_client.get(download, headers={"Range": "bytes=3-"})
        assert part.status_code == 206 and b"".join(part.streaming_content) == b"ghts"
        assert part["Content-Range"] == "bytes 3-6/7"
        past = carol_client.get(download, headers={"Range": "bytes=9-"})
        assert (past.status_code, past["Content-Range"]) == (416, "bytes */7")
        assert "past the end of 7 bytes" in past.content.decode()

    def test_it_answers_404_to_an_outsider_and_for_a_missing_path(
        self, mallory_client, alice_client, version
    ):
        download = url(version, "catalog:artifact-download", "model.bin")
        assert mallory_client.get(download).status_code == 404
        missing = url(version, "catalog:artifact-download", "nope.bin")
        assert alice_client.get(missing).status_code == 404

    def test_it_refuses_post(self, alice_client, version):
        download = url(version, "catalog:artifact-download", "model.bin")
        assert alice_client.post(download).status_code == 405


def test_it_shows_a_closed_version_without_ingredient_controls(alice_client, version, alice):
    version_set_lock_level(actor=alice, version=version, level="closed")
    body = alice_client.get(url(version)).content.decode()
    assert "lock-control" not in body  # nothing above closed, and alice may not lower
    assert "Nobody may change its ingredients" in body


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_its_query_count_flat(
    alice_client, model, alice, bob, rows, django_assert_num_queries
):
    parent = version_create(actor=alice, model=model)
    version = version_create(
        actor=alice,
        model=model,
        parents=[parent],
        artifacts={f"f{i}.bin": io.BytesIO(f"{i}".encode()) for i in range(rows)},
    )
    for index in range(rows):
        comment_add(actor=alice, model=model, version=version, body=f"comment {index}")
    request_create(actor=alice, version=version, to_stage="staging", comment="please")
    with django_assert_num_queries(VERSION_PAGE_QUERIES):
        response = alice_client.get(url(version))
    assert len(response.context["comments"]) == rows


def test_it_hides_lineage_in_models_the_viewer_may_not_view(
    carol_client, alice_client, cast, alice
):
    from registry.demo import ensure_shared_model
    from registry.models import Visibility

    public = ensure_shared_model(cast, "fraud")
    private = ensure_shared_model(cast, "secret-lab", visibility=Visibility.PRIVATE)
    parent = version_create(actor=alice, model=public)
    version_create(actor=alice, model=private, parents=[parent])
    assert b"secret-lab" in alice_client.get(url(parent)).content
    assert b"secret-lab" not in carol_client.get(url(parent)).content


def test_it_offers_no_lowering_in_compliance_mode(admin_client, version, admin, acme):
    from registry.services.orgs import org_update

    version_set_lock_level(actor=admin, version=version, level="closed")
    assert b"lock-control" in admin_client.get(url(version)).content  # an admin may lower
    org_update(actor=admin, org=acme, closed_is_final=True)
    assert b"lock-control" not in admin_client.get(url(version)).content


class TestMetadata:
    def post(self, client, version, **data):
        return client.post(url(version, "catalog:version-metadata"), data)

    def test_it_edits_free_metadata_even_when_closed(self, alice_client, version, alice):
        version_set_lock_level(actor=alice, version=version, level="closed")
        response = self.post(alice_client, version, description="Second thoughts", readme="# R")
        assert response.status_code == 302
        version.refresh_from_db()
        assert (version.description, version.readme) == ("Second thoughts", "# R")
        event = ActivityEvent.objects.get(verb="version.updated", version_id=version.pk)
        assert event.changes["description"] == ["First cut", "Second thoughts"]

    def test_it_refuses_get(self, alice_client, version):
        assert alice_client.get(url(version, "catalog:version-metadata")).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, version):
        assert self.post(mallory_client, version, description="x").status_code == 404

    def test_it_tells_a_viewer_they_may_not(self, carol_client, version):
        response = self.post(carol_client, version, description="x")
        assert "write permission" in carol_client.get(response["Location"]).content.decode()
        version.refresh_from_db()
        assert version.description == "First cut"


def test_it_explains_instead_of_offering_production_on_an_unprotected_branch(
    alice_client, alice, model, exp
):
    version = version_create(actor=alice, model=model, branch="exp")
    page = alice_client.get(url(version)).content.decode()
    assert "Production (needs a protected branch)" in page
    page = alice_client.get(url(version) + "?request=production").content.decode()
    assert 'id="production-unprotected"' in page
    assert 'name="to_stage" value="production"' not in page
    # Other stages are still offered with their form.
    page = alice_client.get(url(version) + "?request=staging").content.decode()
    assert 'name="to_stage" value="staging"' in page
