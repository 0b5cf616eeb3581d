"""The Python client (SPEC 4.3) against this server, over real HTTP: the seed's snippets as
written, a two-user request/approve cycle, typed errors and a verified download."""

import pytest

modelvault = pytest.importorskip(
    "modelvault", reason="the client is not installed: pip install -e ./client"
)

from modelvault import Client  # noqa: E402
from modelvault.errors import LockedError, NotFound, PermissionDenied  # noqa: E402
from modelvault.lock import Closed, Redact  # noqa: E402
from modelvault.stage_change import Staging  # noqa: E402


@pytest.fixture
def clients(transactional_db, live_server, admin_token, alice_token, carol_token, mallory_token):
    def make(token: str) -> Client:
        return Client(live_server.url, token=token, org="acme")

    return {
        "alice": make(alice_token),
        "admin": make(admin_token),
        "carol": make(carol_token),
        "mallory": make(mallory_token),
    }


def test_it_runs_the_spec_snippets(clients, tmp_path):
    client = clients["alice"]
    local = tmp_path / "model.pkl"
    local.write_bytes(b"not really a pickle")
    model = client.create_registered_model(description="fraud scoring")
    version = model.create_version(
        lock_level=Redact(),
        label="1.0.0",
        params={"lr": 0.01},
        metrics={"auc": 0.91},
        artifacts={"model.pkl": local},
    )
    assert version.lock_level == "redact"
    version.set_lock_level(Closed())
    assert version.lock_level == "closed"
    request = version.change_stage(Staging("Undergoing final testing."))
    assert request.status == "pending"
    assert version.stage == "unassigned"
    # alice made the model: she and the org admins may approve, never her own request.
    assert clients["alice"].pending_approvals() == []
    pending = clients["admin"].pending_approvals()
    assert [p.id for p in pending] == [request.id]
    pending[0].approve("looks good")
    assert version.stage == "staging"
    assert model.versions.find("stage == staging")[0].number == version.number
    target = version.download_artifact("model.pkl", tmp_path / "dest")
    assert target.read_bytes() == b"not really a pickle"


def test_it_raises_typed_errors_with_the_servers_message(clients):
    model = clients["alice"].create_registered_model()
    model.create_version(lock_level=Closed())
    with pytest.raises(LockedError, match="closed"):
        clients["alice"].json(
            "PATCH", f"/orgs/acme/models/{model.name}/versions/1", json={"params": {"a": 1}}
        )
    with pytest.raises(PermissionDenied):
        clients["carol"].get_registered_model(model.name).create_version()
    with pytest.raises(NotFound):
        clients["mallory"].get_registered_model(model.name)
