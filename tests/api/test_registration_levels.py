"""The lock level a version is registered at (SPEC 3.2), over the API as on the web UI's
new-version page (tests/catalog/test_register.py): below the organization's default counts
as lowering, for org admins only."""

import pytest

from registry.models import ModelVersion
from registry.services.orgs import org_update
from tests.api.conftest import error_code

VERSIONS = "/orgs/acme/models/fraud/versions"


@pytest.fixture
def redact_by_default(acme, admin):
    return org_update(actor=admin, org=acme, default_lock_level="redact")


def test_it_registers_at_the_default_or_above(api, model, redact_by_default, alice_token):
    assert api("POST", VERSIONS, alice_token, {}).json()["lock_level"] == "redact"
    assert api("POST", VERSIONS, alice_token, {"lock_level": "closed"}).status_code == 201


def test_it_refuses_a_writer_below_the_default(api, model, redact_by_default, alice_token):
    response = api("POST", VERSIONS, alice_token, {"lock_level": "open"})
    assert (response.status_code, error_code(response)) == (403, "forbidden")
    assert "counts as lowering" in response.json()["error"]["message"]
    assert not ModelVersion.objects.exists()


def test_it_lets_an_org_admin_register_below_the_default(
    api, model, redact_by_default, admin_token
):
    response = api("POST", VERSIONS, admin_token, {"lock_level": "open"})
    assert (response.status_code, response.json()["lock_level"]) == (201, "open")
