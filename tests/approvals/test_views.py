import pytest
from django.urls import reverse

from approvals.models import RequestStatus, StageChangeRequest
from approvals.services import request_create
from registry.demo import ensure_shared_model
from registry.models import ActivityEvent, Stage
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

PENDING_QUERIES = 4


@pytest.fixture
def change(model, alice):
    version = version_create(actor=alice, model=model)
    return request_create(actor=alice, version=version, to_stage="staging", comment="please")


def post(client, name, change, comment=""):
    return client.post(reverse(f"approvals:{name}", args=[change.pk]), {"comment": comment})


def message_after(client, response) -> str:
    return client.get(response["Location"]).content.decode()


class TestApprove:
    def test_it_approves_and_applies_the_change(self, bob_client, change):
        response = post(bob_client, "approve", change, "looks good")
        assert response.status_code == 302
        change.refresh_from_db()
        change.version.refresh_from_db()
        assert change.status == RequestStatus.APPROVED
        assert change.version.stage == Stage.STAGING
        event = ActivityEvent.objects.get(verb="stage.approved", version_id=change.version_id)
        assert event.data["comment"] == "looks good"
        assert ActivityEvent.objects.filter(verb="stage.applied").exists()

    def test_it_refuses_get(self, bob_client, change):
        assert bob_client.get(reverse("approvals:approve", args=[change.pk])).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, change):
        assert post(mallory_client, "approve", change).status_code == 404
        change.refresh_from_db()
        assert change.status == RequestStatus.PENDING

    def test_it_tells_a_viewer_they_may_not(self, carol_client, change):
        response = post(carol_client, "approve", change)
        assert "approve permission" in message_after(carol_client, response)
        change.refresh_from_db()
        assert change.status == RequestStatus.PENDING

    def test_it_refuses_the_requester_with_a_message(self, alice_client, change):
        response = post(alice_client, "approve", change)
        assert "your own request" in message_after(alice_client, response)

    def test_it_shows_a_stale_request_as_a_message(self, bob_client, admin_client, change):
        post(admin_client, "approve", change)
        response = post(bob_client, "approve", change)
        assert "only a pending request" in message_after(bob_client, response)


class TestReject:
    def test_it_rejects_with_a_comment(self, bob_client, change):
        post(bob_client, "reject", change, "not yet")
        change.refresh_from_db()
        assert change.status == RequestStatus.REJECTED
        event = ActivityEvent.objects.get(verb="stage.rejected")
        assert event.data["comment"] == "not yet"

    def test_it_refuses_get(self, bob_client, change):
        assert bob_client.get(reverse("approvals:reject", args=[change.pk])).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, change):
        assert post(mallory_client, "reject", change).status_code == 404

    def test_it_tells_a_viewer_they_may_not(self, carol_client, change):
        response = post(carol_client, "reject", change)
        assert "approve permission" in message_after(carol_client, response)
        change.refresh_from_db()
        assert change.status == RequestStatus.PENDING


class TestCancel:
    def test_it_lets_the_requester_cancel(self, alice_client, change):
        post(alice_client, "cancel", change, "wrong version")
        change.refresh_from_db()
        assert change.status == RequestStatus.CANCELLED
        assert ActivityEvent.objects.get(verb="stage.cancelled").data["comment"] == "wrong version"

    def test_it_refuses_get(self, alice_client, change):
        assert alice_client.get(reverse("approvals:cancel", args=[change.pk])).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, change):
        assert post(mallory_client, "cancel", change).status_code == 404

    def test_it_tells_a_viewer_they_may_not(self, carol_client, change):
        response = post(carol_client, "cancel", change)
        assert "only the requester or an org admin" in message_after(carol_client, response)
        change.refresh_from_db()
        assert change.status == RequestStatus.PENDING


class TestVersionBanner:
    def test_it_shows_approve_and_reject_to_bob_only(
        self, bob_client, alice_client, carol_client, change
    ):
        version_url = reverse("catalog:version", args=["acme", "fraud", change.version.number])
        bob_page = bob_client.get(version_url).content.decode()
        alice_page = alice_client.get(version_url).content.decode()
        carol_page = carol_client.get(version_url).content.decode()
        approve = reverse("approvals:approve", args=[change.pk])
        cancel = reverse("approvals:cancel", args=[change.pk])
        assert approve in bob_page and cancel not in bob_page
        assert approve not in alice_page and cancel in alice_page
        assert approve not in carol_page and cancel not in carol_page


class TestQueue:
    def test_it_lists_what_bob_may_review(self, bob_client, alice_client, change):
        assert list(bob_client.get(reverse("approvals:pending")).context["page"]) == [change]
        assert list(alice_client.get(reverse("approvals:pending")).context["page"]) == []

    def test_it_lists_nothing_for_an_outsider(self, mallory_client, change):
        assert list(mallory_client.get(reverse("approvals:pending")).context["page"]) == []

    @pytest.mark.parametrize("rows", [5, 50])
    def test_it_keeps_its_query_count_flat(
        self, bob_client, cast, alice, rows, django_assert_num_queries
    ):
        for index in range(rows):
            version = version_create(actor=alice, model=ensure_shared_model(cast, f"m-{index:02d}"))
            request_create(actor=alice, version=version, to_stage="development")
        with django_assert_num_queries(PENDING_QUERIES):
            response = bob_client.get(reverse("approvals:pending"))
        assert response.context["page"].paginator.count == rows
        assert StageChangeRequest.objects.count() == rows


def test_it_lets_bob_reject_from_the_queue(bob_client, change):
    queue = bob_client.get(reverse("approvals:pending")).content.decode()
    assert reverse("approvals:reject", args=[change.pk]) in queue
    response = bob_client.post(
        reverse("approvals:reject", args=[change.pk]),
        {"comment": "numbers look off", "next": reverse("approvals:pending")},
    )
    assert response["Location"] == reverse("approvals:pending")
    change.refresh_from_db()
    assert change.status == RequestStatus.REJECTED
