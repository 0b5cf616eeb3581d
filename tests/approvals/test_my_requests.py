"""My requests: the stage and alias requests a user filed, with their status, linked from
the navigation and from pending approvals."""

import pytest
from django.urls import reverse

from approvals.models import StageChangeRequest
from approvals.services import request_cancel, request_create, request_reject
from registry.demo import ensure_shared_model
from registry.services.registered_models import model_update
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

MINE = reverse("approvals:mine")
MINE_QUERIES = 4


def test_it_lists_my_requests_with_their_status(alice_client, model, alice, bob, admin):
    first = request_create(
        actor=alice, version=version_create(actor=alice, model=model), to_stage="staging"
    )
    request_reject(actor=bob, request=first, comment="not yet")
    second = request_create(
        actor=alice, version=version_create(actor=alice, model=model), to_stage="development"
    )
    theirs = request_create(
        actor=admin, version=version_create(actor=admin, model=model), to_stage="staging"
    )
    response = alice_client.get(MINE)
    assert response.status_code == 200
    assert [change.pk for change in response.context["page"]] == [second.pk, first.pk]
    page = response.content.decode()
    assert "Rejected" in page and "Pending" in page
    assert reverse("approvals:cancel", args=[second.pk]) in page
    assert reverse("approvals:cancel", args=[first.pk]) not in page
    assert f"#{theirs.pk}<" not in page


def test_it_cancels_from_the_list_and_comes_back(alice_client, model, alice):
    change = request_create(
        actor=alice, version=version_create(actor=alice, model=model), to_stage="staging"
    )
    response = alice_client.post(reverse("approvals:cancel", args=[change.pk]), {"next": MINE})
    assert response["Location"] == MINE
    assert "Cancelled" in alice_client.get(MINE).content.decode()


def test_it_hides_requests_on_a_model_i_may_no_longer_view(carol_client, carol, admin, acme, cast):
    from registry.services.registered_models import model_grant

    model = ensure_shared_model(cast, "hidden")
    model_grant(actor=admin, model=model, permission="write", user=carol)
    change = request_create(
        actor=carol, version=version_create(actor=carol, model=model), to_stage="staging"
    )
    request_cancel(actor=carol, request=change)
    model_update(actor=admin, model=model, visibility="private")
    model.refresh_from_db()
    from registry.services.registered_models import model_revoke

    model_revoke(actor=admin, model=model, permission="write", user=carol)
    assert carol_client.get(MINE).context["page"].paginator.count == 0


def test_it_needs_a_login_and_refuses_post(client, alice_client):
    assert client.get(MINE).status_code == 302
    assert alice_client.post(MINE).status_code == 405


def test_it_links_my_requests_and_notification_settings_from_the_navigation(alice_client):
    page = alice_client.get(reverse("catalog:home")).content.decode()
    assert f'href="{MINE}"' in page
    assert f'href="{reverse("notifications:preferences")}"' in page
    pending = alice_client.get(reverse("approvals:pending")).content.decode()
    assert f'href="{MINE}"' in pending


@pytest.mark.parametrize("rows", [1, 12])
def test_it_keeps_its_query_count_flat(rows, cast, alice, alice_client, django_assert_num_queries):
    for index in range(rows):
        version = version_create(actor=alice, model=ensure_shared_model(cast, f"m-{index:02d}"))
        request_create(actor=alice, version=version, to_stage="development")
    with django_assert_num_queries(MINE_QUERIES):
        response = alice_client.get(MINE)
    assert response.context["page"].paginator.count == rows
    assert StageChangeRequest.objects.count() == rows
