"""Editing where you read (SPEC 4.1, 3.2): a model's and a version's description, readme and
tags on their own pages, through the services; tags shown on tiles, the card and the version
page, each a link into the catalog's search."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from registry.models import ActivityEvent
from registry.services.registered_models import model_update
from registry.services.versions import version_create, version_set_lock_level
from tests.catalog.test_register import rows
from tests.conftest import messages_of

pytestmark = pytest.mark.django_db

CARD = reverse("catalog:model", args=["acme", "fraud"])
MODEL_METADATA = reverse("catalog:model-metadata", args=["acme", "fraud"])


def version_metadata(version) -> str:
    return reverse("catalog:version-metadata", args=["acme", "fraud", version.number])


def tag_links(html: str) -> list[str]:
    """The search query of every tag link on a page."""
    found = []
    for chunk in html.split('class="tag" href="')[1:]:
        href = chunk.split('"', 1)[0].replace("&amp;", "&")
        found.append(parse_qs(urlsplit(href).query)["q"][0])
    return found


# The model's card


def test_it_edits_a_models_description_readme_and_tags(alice_client, model, alice):
    data = {
        "description": "Card fraud, v2",
        "readme": "# Fraud",
        **rows("tags", [("team", "risk"), ("tier", "1")], blank=1),
    }
    response = alice_client.post(MODEL_METADATA, data)
    assert (response.status_code, response["Location"]) == (302, CARD)
    model.refresh_from_db()
    assert (model.description, model.readme) == ("Card fraud, v2", "# Fraud")
    assert model.tags == {"team": "risk", "tier": "1"}
    event = ActivityEvent.objects.filter(verb="model.updated").get()
    assert event.actor == alice
    assert event.changes["tags"] == [{}, {"team": "risk", "tier": "1"}]


def test_it_removes_a_tag_whose_name_is_cleared(alice_client, model, admin):
    model_update(actor=admin, model=model, tags={"team": "risk", "old": "x"})
    data = {"description": model.description, "readme": "", **rows("tags", [("team", "risk")])}
    data.update({"tags-1-key": "", "tags-1-value": "x", "tags-TOTAL_FORMS": "2"})
    assert alice_client.post(MODEL_METADATA, data).status_code == 302
    model.refresh_from_db()
    assert model.tags == {"team": "risk"}


def test_it_shows_the_edit_form_to_writers_only(alice_client, carol_client, model, admin):
    model_update(actor=admin, model=model, tags={"team": "risk"})
    page = alice_client.get(CARD).content.decode()
    assert MODEL_METADATA in page and 'value="risk"' in page
    assert MODEL_METADATA not in carol_client.get(CARD).content.decode()


def test_it_refuses_a_viewer_with_a_message(carol_client, model):
    response = carol_client.post(MODEL_METADATA, {"description": "mine", **rows("tags", [])})
    assert response.status_code == 302
    assert messages_of(response) == ["you do not have write permission on model fraud"]
    model.refresh_from_db()
    assert model.description != "mine"


def test_it_hides_the_model_from_an_outsider(mallory_client, model):
    response = mallory_client.post(MODEL_METADATA, {"description": "x", **rows("tags", [])})
    assert response.status_code == 404


def test_it_refuses_get_on_the_edit(alice_client, model):
    assert alice_client.get(MODEL_METADATA).status_code == 405


def test_it_names_a_refused_tag_row(alice_client, model):
    data = {"description": "", "readme": "", **rows("tags", [("team", "a"), ("team", "b")])}
    response = alice_client.post(MODEL_METADATA, data, HTTP_REFERER=CARD)
    assert messages_of(response) == ["tags: team is given twice"]
    model.refresh_from_db()
    assert model.tags == {}


# The version page


def test_it_edits_the_tags_of_a_closed_version(alice_client, model, alice):
    version = version_create(actor=alice, model=model, tags={"team": "risk"})
    version_set_lock_level(actor=alice, version=version, level="closed")
    data = {"description": "Frozen", "readme": "", **rows("tags", [("team", "fraud-ops")])}
    response = alice_client.post(version_metadata(version), data)
    assert response.status_code == 302
    assert messages_of(response) == ["Description, readme and tags saved."]
    version.refresh_from_db()
    assert (version.description, version.tags) == ("Frozen", {"team": "fraud-ops"})
    event = ActivityEvent.objects.filter(verb="version.updated").get()
    assert event.changes["tags"] == [{"team": "risk"}, {"team": "fraud-ops"}]
    assert "digest" not in event.changes  # free metadata: the digest stays


def test_it_keeps_the_tags_when_the_form_has_no_tag_rows(alice_client, model, alice):
    version = version_create(actor=alice, model=model, tags={"team": "risk"})
    alice_client.post(version_metadata(version), {"description": "only text", "readme": ""})
    version.refresh_from_db()
    assert (version.description, version.tags) == ("only text", {"team": "risk"})


def test_it_refuses_a_version_edit_to_a_viewer(carol_client, model, alice):
    version = version_create(actor=alice, model=model)
    response = carol_client.post(
        version_metadata(version), {"description": "x", "readme": "", **rows("tags", [])}
    )
    assert messages_of(response) == ["you do not have write permission on model fraud"]
    version.refresh_from_db()
    assert version.description == ""


# Tags everywhere, each a search


def test_it_links_a_models_tags_from_its_tile_and_card_into_the_search(
    carol_client, model, cast, admin
):
    from registry.demo import ensure_shared_model

    model_update(actor=admin, model=model, tags={"team": "risk", "prod-eu": "yes"})
    ensure_shared_model(cast, "churn")
    catalog = carol_client.get(reverse("catalog:catalog", args=["acme"])).content.decode()
    assert tag_links(catalog) == ["team=risk", "prod-eu=yes"]
    assert tag_links(carol_client.get(CARD).content.decode()) == ["team=risk", "prod-eu=yes"]
    for query in tag_links(catalog):
        found = carol_client.get(reverse("catalog:catalog", args=["acme"]), {"q": query})
        assert [m.name for m in found.context["page"]] == ["fraud"]


def test_it_links_a_versions_tags_into_the_query_language(carol_client, model, cast, alice):
    from registry.demo import ensure_shared_model

    version = version_create(actor=alice, model=model, tags={"team": 'risk "core"'})
    version_create(actor=alice, model=ensure_shared_model(cast, "churn"), tags={"team": "x"})
    page = carol_client.get(reverse("catalog:version", args=["acme", "fraud", version.number]))
    assert tag_links(page.content.decode()) == ['tags.team == "risk \\"core\\""']
    found = carol_client.get(
        reverse("catalog:catalog", args=["acme"]), {"q": tag_links(page.content.decode())[0]}
    )
    assert found.context["query_error"] == ""
    assert [m.name for m in found.context["page"]] == ["fraud"]


def test_it_shows_a_tag_it_cannot_search_without_a_link(carol_client, model, admin, alice):
    model_update(actor=admin, model=model, tags={"has space": "x", "contains": "y"})
    version = version_create(actor=alice, model=model, tags={"has space": "x"})
    card = carol_client.get(CARD).content.decode()
    assert tag_links(card) == []
    assert "has space: x" in card and "contains: y" in card
    page = carol_client.get(reverse("catalog:version", args=["acme", "fraud", version.number]))
    assert tag_links(page.content.decode()) == []
    # Typed by hand, a lookup's name is a plain word search, not an ORM lookup.
    found = carol_client.get(reverse("catalog:catalog", args=["acme"]), {"q": "contains=y"})
    assert found.status_code == 200 and list(found.context["page"]) == []


def test_it_edits_a_version_through_the_service_only(alice_client, model, alice):
    """The view passes free metadata only: an ingredient sent with it is not set."""
    version = version_create(actor=alice, model=model, params={"lr": 0.1})
    data = {"description": "d", "readme": "", "params": '{"lr": 9}', **rows("tags", [])}
    alice_client.post(version_metadata(version), data)
    version.refresh_from_db()
    assert (version.params, version.description) == ({"lr": 0.1}, "d")
