from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.services import request_approve, request_create
from registry.models import ActivityEvent, ModelUserPermission, Visibility
from registry.services.comments import comment_add
from registry.services.registered_models import model_update
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

# Pinned per tab: the same with 5 and with 50 rows. One of them is the view's read of what the
# caller may do (model_access), after the fetch that checked they may view; the overview
# reads the open flags of the model besides.
TAB_QUERIES = {"overview": 12, "versions": 10, "approvals": 9, "activity": 10}


def card(tab: str = "overview", **params) -> str:
    from urllib.parse import urlencode

    return (
        reverse("catalog:model", args=["acme", "fraud"]) + "?" + urlencode({"tab": tab, **params})
    )


def test_it_renders_the_readme_sanitised(alice_client, model, admin):
    model_update(actor=admin, model=model, readme="# Fraud\n<script>window.x=1</script>")
    body = alice_client.get(card()).content.decode()
    assert "<h1>Fraud</h1>" in body and "<script>window.x" not in body


def test_it_links_production_versions_and_draws_a_metric_trend(alice_client, model, alice, bob):
    for auc in (0.8, 0.85):
        version_create(actor=alice, model=model, metrics={"auc": auc})
    version = version_create(actor=alice, model=model, metrics={"auc": 0.9})
    change = request_create(actor=alice, version=version, to_stage="production")
    request_approve(actor=bob, request=change)
    page = alice_client.get(card())
    assert list(page.context["production_versions"]) == [version]
    assert [bar.value for bar in page.context["trend"]] == [0.8, 0.85, 0.9]
    assert b"stage-production" in page.content


def test_it_filters_versions_by_stage(alice_client, model, alice, bob):
    staged = version_create(actor=alice, model=model)
    version_create(actor=alice, model=model)
    request_approve(
        actor=bob, request=request_create(actor=alice, version=staged, to_stage="staging")
    )
    page = alice_client.get(card("versions", stage="staging"))
    assert [v.number for v in page.context["page"]] == [staged.number]


def test_it_counts_pending_requests_on_the_tab(alice_client, model, alice):
    version = version_create(actor=alice, model=model)
    request_create(actor=alice, version=version, to_stage="staging", comment="please")
    page = alice_client.get(card("approvals"))
    assert page.context["counts"]["approvals"] == 1
    assert b"please" in page.content


def test_it_filters_activity_by_verb(alice_client, model, alice):
    version = version_create(actor=alice, model=model)
    comment_add(actor=alice, model=model, version=version, body="hello")
    page = alice_client.get(card("activity", verb="comment.added"))
    assert {e.verb for e in page.context["page"]} == {"comment.added"}


def test_it_shows_the_state_at_a_past_time(alice_client, model, alice, bob):
    before = (timezone.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    version = version_create(actor=alice, model=model)
    request_approve(
        actor=bob, request=request_create(actor=alice, version=version, to_stage="staging")
    )
    page = alice_client.get(card("activity", at=before))
    assert page.context["state"]["versions"] == {}
    assert b"No versions existed then" in page.content
    later = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    page = alice_client.get(card("activity", at=later))
    assert page.context["state"]["versions"] == {version.number: "staging"}


def test_it_answers_404_to_an_outsider_and_to_a_viewer_of_nothing(
    mallory_client, carol_client, model, admin
):
    assert mallory_client.get(card()).status_code == 404
    model_update(actor=admin, model=model, visibility=Visibility.PRIVATE)
    assert carol_client.get(card()).status_code == 404


def test_it_shows_settings_only_to_those_who_may_change_something(
    admin_client, alice_client, carol_client, model
):
    assert b"Save settings" in admin_client.get(card("settings")).content
    alice_page = alice_client.get(card("settings")).content
    assert b"?tab=settings" in alice_page and b"Save settings" not in alice_page
    assert b"?tab=settings" not in carol_client.get(card()).content


class TestSettings:
    def post(self, client, model, **data):
        return client.post(reverse("catalog:model-settings", args=["acme", model.name]), data)

    def test_it_saves_visibility_and_required_approvals(self, admin_client, model):
        self.post(admin_client, model, visibility="private", required_approvals="2")
        model.refresh_from_db()
        assert (model.visibility, model.required_approvals) == ("private", 2)
        assert ActivityEvent.objects.filter(verb="model.updated", model_id=model.pk).exists()

    def test_it_refuses_get(self, admin_client, model):
        url = reverse("catalog:model-settings", args=["acme", model.name])
        assert admin_client.get(url).status_code == 405

    def test_it_answers_404_to_an_outsider(self, mallory_client, model):
        assert self.post(mallory_client, model, visibility="private").status_code == 404

    def test_it_tells_a_viewer_they_may_not(self, carol_client, model):
        response = self.post(carol_client, model, visibility="private")
        assert response.status_code == 302
        assert "messages" in carol_client.get(response["Location"]).content.decode()
        model.refresh_from_db()
        assert model.visibility == Visibility.ORGANIZATION


class TestShare:
    def post(self, client, model, **data):
        return client.post(reverse("catalog:model-grant", args=["acme", model.name]), data)

    def test_it_grants_a_permission(self, admin_client, model, carol):
        self.post(admin_client, model, username="carol", permission="write")
        assert ModelUserPermission.objects.filter(
            user=carol, content_object=model, permission__codename="write_registeredmodel"
        ).exists()
        assert ActivityEvent.objects.filter(verb="permission.granted", model_id=model.pk).exists()

    def test_it_refuses_get(self, admin_client, model):
        assert (
            admin_client.get(reverse("catalog:model-grant", args=["acme", model.name])).status_code
            == 405
        )

    def test_it_answers_404_to_an_outsider(self, mallory_client, model):
        assert (
            self.post(mallory_client, model, username="mallory", permission="view").status_code
            == 404
        )

    def test_it_tells_a_viewer_they_may_not(self, carol_client, model, carol):
        response = self.post(carol_client, model, username="carol", permission="write")
        assert "owner or an org admin" in carol_client.get(response["Location"]).content.decode()
        assert not ModelUserPermission.objects.filter(user=carol, content_object=model).exists()


@pytest.mark.parametrize("rows", [5, 50])
@pytest.mark.parametrize("tab", list(TAB_QUERIES))
def test_it_keeps_its_query_count_flat(
    alice_client, model, alice, rows, tab, django_assert_num_queries
):
    for index in range(rows):
        version = version_create(actor=alice, model=model, metrics={"auc": index / 100})
        request_create(actor=alice, version=version, to_stage="development")
    with django_assert_num_queries(TAB_QUERIES[tab]):
        response = alice_client.get(card(tab))
    assert response.status_code == 200


def test_it_queries_versions_with_the_query_language(alice_client, model, alice):
    version_create(actor=alice, model=model, metrics={"auc": 0.7})
    good = version_create(actor=alice, model=model, metrics={"auc": 0.95})
    page = alice_client.get(card("versions", q="metrics.auc > 0.9"))
    assert [v.number for v in page.context["page"]] == [good.number]
    broken = alice_client.get(card("versions", q="stage ==="))
    assert broken.status_code == 200 and broken.context["query_error"]


def test_it_shows_open_flags_on_the_card(alice_client, model, alice, bob, carol):
    from registry.services.flags import flag_raise, flag_resolve

    version = version_create(actor=alice, model=model)
    request_approve(
        actor=bob, request=request_create(actor=alice, version=version, to_stage="production")
    )
    flag = flag_raise(actor=carol, version=version, severity="high", summary="score drift")
    resolved = flag_raise(actor=carol, version=version, severity="low", summary="old news")
    flag_resolve(actor=alice, flag=resolved, resolution="fixed")
    page = alice_client.get(card())
    assert list(page.context["open_flags"]) == [flag]
    body = page.content.decode()
    assert "score drift" in body and "old news" not in body
    assert 'data-open-flags="1"' in body  # on the production version's quick link too
