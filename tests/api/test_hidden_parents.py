"""A parent in a model the caller may not view does not exist for them (SPEC 3.1): no
endpoint that shows a version lists it, by name, number or digest. The version page and its
documentation hide it too (tests/catalog/test_lineage.py)."""

import pytest

from registry.models import Visibility
from registry.services.registered_models import model_create
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db

V = "/orgs/acme/models/fraud/versions"


@pytest.fixture
def family(model, acme, admin, alice):
    """fraud v2 (registered by admin) with two parents: fraud v1, and v1 of secret-lab, a
    private model only admin may view."""
    secret = model_create(actor=admin, org=acme, name="secret-lab", visibility=Visibility.PRIVATE)
    hidden = version_create(actor=admin, model=secret, params={"secret": 1})
    seen = version_create(actor=alice, model=model)
    child = version_create(actor=admin, model=model, parents=[seen, hidden])
    return {"hidden": hidden, "seen": seen, "child": child}


def parents(item) -> list[tuple[str, int]]:
    return [(p["model"], p["number"]) for p in item["parents"]]


def only_seen(family):
    return [("fraud", family["seen"].number)]


def test_it_hides_the_parent_from_a_viewer_of_one_version(api, family, carol_token, admin_token):
    path = f"{V}/{family['child'].number}"
    body = api("GET", path, carol_token).json()
    assert parents(body) == only_seen(family)
    assert family["hidden"].digest not in str(body) and "secret-lab" not in str(body)
    assert ("secret-lab", 1) in parents(api("GET", path, admin_token).json())


def test_it_hides_the_parent_in_every_list(api, family, carol_token, admin_token):
    child = family["child"]
    pages = {
        "list": (V, {}),
        "search": ("/orgs/acme/versions", {"q": f"number == {child.number}"}),
        "digest": (f"/versions/by-digest/{child.digest}", {}),
    }
    for name, (path, query) in pages.items():
        items = api("GET", path, carol_token, **query).json()["items"]
        [found] = [i for i in items if i["id"] == str(child.pk)]
        assert parents(found) == only_seen(family), name
        items = api("GET", path, admin_token, **query).json()["items"]
        [as_admin] = [i for i in items if i["id"] == str(child.pk)]
        assert len(as_admin["parents"]) == 2, name


def test_it_hides_the_parent_in_a_writers_answers(api, family, alice_token):
    """alice may write fraud but not view secret-lab: the versions she changes come back
    without it."""
    child = family["child"]
    path = f"{V}/{child.number}"
    body = api("PATCH", path, alice_token, {"description": "checked"}).json()
    assert parents(body) == only_seen(family)
    body = api("PUT", f"{path}/lock", alice_token, {"level": "redact"}).json()
    assert parents(body) == only_seen(family)
