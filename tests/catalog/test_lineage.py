"""The version page's lineage graph, "Promote to main", and the Branches panel of the model
card's Settings tab (SPEC 3.6, 4.1)."""

import io

import pytest
from django.urls import reverse

from registry.lineage import lineage_svg, version_lineage
from registry.models import ActivityEvent, Branch, ModelVersion, Visibility
from registry.services.branches import branch_create, branch_set_protection
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.catalog.test_version_page import VERSION_PAGE_QUERIES

pytestmark = pytest.mark.django_db

SETTINGS_TAB_QUERIES = 12  # the same with 5 and with 50 branches


def page(version, name="catalog:version") -> str:
    return reverse(name, args=[version.model.org.slug, version.model.name, version.number])


def settings_tab() -> str:
    return reverse("catalog:model", args=["acme", "fraud"]) + "?tab=settings"


def follow(client, response) -> str:
    return client.get(response["Location"]).content.decode()


@pytest.fixture
def experimental(model, exp, alice) -> ModelVersion:
    return version_create(
        actor=alice,
        model=model,
        branch="exp",
        datasets=[{"name": "cards", "uri": "s3://d/cards", "version": "3"}],
        code_version={"repo": "ml/fraud", "commit": "abc123def4567890"},
        artifacts={"model.bin": io.BytesIO(b"weights")},
    )


@pytest.fixture
def secret(acme, admin):
    """A private acme model only admin may view."""
    return model_create(actor=admin, org=acme, name="secret-lab", visibility=Visibility.PRIVATE)


# The graph


def test_it_draws_parents_children_datasets_and_code(alice_client, model, experimental, alice):
    parent = version_create(actor=alice, model=model)
    child = version_create(actor=alice, model=model, parents=[experimental])
    ModelVersion.objects.get(pk=experimental.pk).parents.add(parent)  # open: allowed
    body = alice_client.get(page(experimental)).content.decode()
    svg = body[body.index("<svg") : body.index("</svg>")]
    assert f'<a href="{page(parent)}"' in svg and f'<a href="{page(child)}"' in svg
    assert f'<a href="{page(experimental)}"' in svg
    assert "branch exp" in svg and "branch main (protected)" in svg
    assert "dataset cards" in svg and "code ml/fraud" in svg and "abc123def456" in svg
    assert "<script" not in svg
    # The same, as plain lists, for readers without the graph.
    assert f'<li><a href="{page(child)}">fraud v{child.number}</a>' in body


def test_it_hides_relatives_the_viewer_may_not_view(
    carol_client, admin_client, experimental, secret, admin
):
    hidden = version_create(actor=admin, model=secret, parents=[experimental])
    assert "secret-lab" in admin_client.get(page(experimental)).content.decode()
    body = carol_client.get(page(experimental)).content.decode()
    assert "secret-lab" not in body and page(hidden) not in body


def test_it_hides_a_parent_the_viewer_may_not_view(carol_client, admin_client, model, secret):
    """A version the viewer may see, with a parent in a model they may not: the page and its
    documentation name only the parent they may see."""
    admin = model.owner
    hidden = version_create(actor=admin, model=secret, params={"secret": 1})
    seen = version_create(actor=admin, model=model)
    child = version_create(actor=admin, model=model, parents=[seen, hidden])
    for name in ("catalog:version", "catalog:version-documentation"):
        assert "secret-lab" in admin_client.get(page(child, name)).content.decode(), name
        body = carol_client.get(page(child, name)).content.decode()
        assert "secret-lab" not in body and hidden.digest not in body, name
        assert f"fraud v{seen.number}" in body or seen.digest in body, name


def test_it_escapes_every_text_of_the_graph(model, alice, admin):
    version = version_create(
        actor=alice,
        model=model,
        datasets=[{"name": '<script>alert(1)</script>"', "uri": "x", "version": "<b>"}],
        code_version={"repo": "<img src=x onerror=alert(1)>"},
    )
    svg = lineage_svg(version_lineage(version, admin))
    assert "<script" not in svg and "<img" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg


def test_it_gives_lineage_data_without_hidden_relatives(experimental, secret, admin, carol):
    version_create(actor=admin, model=secret, parents=[experimental])
    assert version_lineage(experimental, carol)["children"] == []
    [child] = version_lineage(experimental, admin)["children"]
    assert (child["model"], child["branch"], child["protected"]) == ("secret-lab", "main", True)


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_the_version_page_query_count_flat(
    alice_client, model, experimental, alice, rows, django_assert_max_num_queries
):
    parents = [version_create(actor=alice, model=model) for _ in range(rows)]
    version = version_create(actor=alice, model=model, parents=[experimental, *parents])
    for _ in range(rows):
        version_create(actor=alice, model=model, parents=[version])
    with django_assert_max_num_queries(VERSION_PAGE_QUERIES):
        response = alice_client.get(page(version))
    assert response.status_code == 200
    assert len(response.context["lineage"]["children"]) == rows
    assert response.content.decode().count('class="lineage-node lineage-child') == rows


# Promote to main


def test_it_offers_promotion_to_writers_off_main(
    alice_client, carol_client, model, experimental, alice
):
    assert "Promote to main" in alice_client.get(page(experimental)).content.decode()
    assert "Promote to main" not in carol_client.get(page(experimental)).content.decode()
    on_main = version_create(actor=alice, model=model)
    assert "Promote to main" not in alice_client.get(page(on_main)).content.decode()


def test_it_promotes_from_the_version_page(alice_client, model, experimental, alice):
    response = alice_client.post(
        page(experimental, "catalog:version-promote"), {"label": "1.0.0", "description": ""}
    )
    promoted = ModelVersion.objects.select_related("branch").get(model=model, number=2)
    assert response.status_code == 302 and response["Location"] == page(promoted)
    assert (promoted.branch.name, promoted.label) == ("main", "1.0.0")
    assert list(promoted.parents.all()) == [experimental]
    assert promoted.artifacts.get().blob_id == experimental.artifacts.get().blob_id
    event = ActivityEvent.objects.filter(verb="branch.promoted").get()
    assert event.actor == alice and event.version_id == promoted.pk
    assert "promoted to main as version 2" in follow(alice_client, response)


def test_it_refuses_get_on_promote(alice_client, experimental):
    assert alice_client.get(page(experimental, "catalog:version-promote")).status_code == 405


def test_it_hides_promotion_from_an_outsider(mallory_client, model, experimental):
    response = mallory_client.post(page(experimental, "catalog:version-promote"), {})
    assert response.status_code == 404
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_it_tells_a_viewer_they_may_not_promote(carol_client, model, experimental):
    response = carol_client.post(
        page(experimental, "catalog:version-promote"), {}, HTTP_REFERER=page(experimental)
    )
    assert response.status_code == 302
    assert "write permission" in follow(carol_client, response)
    assert ModelVersion.objects.filter(model=model).count() == 1


def test_it_explains_why_a_main_version_is_not_promoted(alice_client, model, alice):
    on_main = version_create(actor=alice, model=model)
    response = alice_client.post(
        page(on_main, "catalog:version-promote"), {}, HTTP_REFERER=page(on_main)
    )
    assert "already on main" in follow(alice_client, response)
    assert ModelVersion.objects.filter(model=model).count() == 1


# The Branches panel


def branch_url(name: str, branch: str | None = None) -> str:
    if branch is None:
        return reverse(f"catalog:{name}", args=["acme", "fraud"])
    return reverse(f"catalog:{name}", args=["acme", "fraud", branch])


def test_it_lists_branches_with_toggles_for_admins_only(admin_client, alice_client, exp):
    admin_page = admin_client.get(settings_tab()).content.decode()
    assert 'id="branch-exp"' in admin_page and "Protect exp" in admin_page
    alice_page = alice_client.get(settings_tab()).content.decode()
    assert 'id="branch-exp"' in alice_page and "Protect exp" not in alice_page
    assert "Create branch" in alice_page and "Org admins protect" in alice_page


def test_it_creates_a_branch_from_the_panel(alice_client, model, alice):
    response = alice_client.post(branch_url("branch-create"), {"name": "exp"})
    assert response.status_code == 302
    assert Branch.objects.filter(model=model, name="exp", created_by=alice).exists()
    assert ActivityEvent.objects.filter(verb="branch.created", model_id=model.pk).exists()


def test_it_refuses_get_on_branch_create(alice_client, model):
    assert alice_client.get(branch_url("branch-create")).status_code == 405


def test_it_hides_branch_creation_from_an_outsider(mallory_client, model):
    assert mallory_client.post(branch_url("branch-create"), {"name": "x"}).status_code == 404
    assert Branch.objects.filter(model=model).count() == 1


def test_it_tells_a_viewer_they_may_not_create_a_branch(carol_client, model):
    response = carol_client.post(
        branch_url("branch-create"), {"name": "x"}, HTTP_REFERER=settings_tab()
    )
    assert "write permission" in follow(carol_client, response)
    assert Branch.objects.filter(model=model).count() == 1


def test_it_protects_and_releases_a_branch_as_an_admin(admin_client, model, exp, admin):
    response = admin_client.post(branch_url("branch-protect", "exp"), {"protected": "true"})
    assert response.status_code == 302 and Branch.objects.get(pk=exp.pk).protected
    event = ActivityEvent.objects.filter(verb="settings.changed", model_id=model.pk).get()
    assert event.actor == admin and event.changes == {"protected": [False, True]}
    admin_client.post(branch_url("branch-protect", "exp"), {"protected": "false"})
    assert not Branch.objects.get(pk=exp.pk).protected


def test_it_refuses_get_on_branch_protection(admin_client, exp):
    assert admin_client.get(branch_url("branch-protect", "exp")).status_code == 405


def test_it_hides_branch_protection_from_an_outsider(mallory_client, exp):
    response = mallory_client.post(branch_url("branch-protect", "exp"), {"protected": "true"})
    assert response.status_code == 404 and not Branch.objects.get(pk=exp.pk).protected


@pytest.mark.parametrize("who", ["alice_client", "carol_client"])
def test_it_tells_non_admins_they_may_not_protect(request, exp, who):
    client = request.getfixturevalue(who)
    response = client.post(
        branch_url("branch-protect", "exp"), {"protected": "true"}, HTTP_REFERER=settings_tab()
    )
    assert response.status_code == 302
    assert "org admin" in follow(client, response)
    assert not Branch.objects.get(pk=exp.pk).protected


def test_it_refuses_a_missing_branch_or_a_bad_value(admin_client, exp):
    missing = admin_client.post(branch_url("branch-protect", "nope"), {"protected": "true"})
    assert missing.status_code == 404
    admin_client.post(branch_url("branch-protect", "exp"), {"protected": "maybe"})
    assert not Branch.objects.get(pk=exp.pk).protected


@pytest.mark.parametrize("rows", [5, 50])
def test_it_keeps_the_settings_tab_query_count_flat(
    admin_client, model, admin, rows, django_assert_max_num_queries
):
    for index in range(rows):
        branch = branch_create(actor=admin, model=model, name=f"exp-{index:02}")
        if index % 2:
            branch_set_protection(actor=admin, branch=branch, protected=True)
    with django_assert_max_num_queries(SETTINGS_TAB_QUERIES):
        response = admin_client.get(settings_tab())
    assert response.content.decode().count('id="branch-exp-') == rows
