"""The Python client against a live server (SPEC 4.3): the seed's snippets as written, a
request/approve cycle with two users, artifacts streamed both ways, typed refusals."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from registry.services.tokens import token_create
from registry.storage import blob_key

modelvault = pytest.importorskip(
    "modelvault", reason="the client is not installed: pip install -e ./client"
)
from modelvault import Client  # noqa: E402
from modelvault.errors import (  # noqa: E402
    ChecksumMismatch,
    InvalidRequest,
    LockedError,
    NotFound,
    PermissionDenied,
)
from modelvault.lock import Closed, Redact  # noqa: E402
from modelvault.stage_change import Production, Staging  # noqa: E402


def _client(live_server, user) -> Client:
    token = token_create(actor=user, user=user, name="client tests")[1]
    return Client(live_server.url, token=token, org="acme")


@pytest.fixture
def alice_mv(live_server, alice):
    with _client(live_server, alice) as client:
        yield client


@pytest.fixture
def admin_mv(live_server, admin):
    with _client(live_server, admin) as client:
        yield client


def test_it_runs_the_snippets_of_spec_4_3(alice_mv, admin_mv):
    model = alice_mv.create_registered_model()
    assert model.name.startswith("model-")
    model_version = model.create_version(lock_level=Redact())
    assert model_version.lock_level == "redact"
    model_version.set_lock_level(Closed())
    assert model_version.lock_level == "closed"

    model_ver = model.create_version(Closed())
    assert model_ver.lock_level == "closed"
    request = model_ver.change_stage(Staging("Undergoing final testing."))
    assert request.status == "pending" and request.comment == "Undergoing final testing."
    assert model_ver.stage == "unassigned"

    # The requester never reviews; the org admin does.
    pending = admin_mv.pending_approvals()
    assert [r.id for r in pending] == [request.id]
    assert pending[0].approve("looks good").status == "approved"
    assert model_ver.stage == "staging"
    found = model.versions.find("stage == staging")
    assert [v.number for v in found] == [model_ver.number]
    assert model.versions.find("stage == staging")[0].digest == model_ver.digest


def test_it_rejects_and_cancels_requests(alice_mv, admin_mv):
    model = alice_mv.create_registered_model("lifecycle", description="cycle")
    version = model.create_version()
    rejected = version.change_stage(Production("ship it"))
    admin_mv.get_stage_request(rejected.id).reject("not yet")
    assert rejected.refresh().status == "rejected"
    cancelled = version.change_stage(Staging())
    assert cancelled.cancel("changed my mind").status == "cancelled"
    assert version.stage == "unassigned"


def test_it_streams_artifacts_both_ways_and_verifies_them(alice_mv, tmp_path):
    local = tmp_path / "out" / "model.pkl"
    local.parent.mkdir()
    payload = bytes(range(256)) * 8_000
    local.write_bytes(payload)
    seen = []
    model = alice_mv.create_registered_model("with-files")
    version = model.create_version(
        lock_level=Closed(),
        label="1.0.0",
        params={"lr": 0.01},
        metrics={"auc": 0.93},
        artifacts={"weights/model.pkl": str(local)},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert version.lock_level == "closed"
    assert version.artifacts == [
        {
            "path": "weights/model.pkl",
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    ]
    assert seen[-1] == (len(payload), len(payload))
    target = version.download_artifact("weights/model.pkl", tmp_path / "dest")
    assert target.read_bytes() == payload
    assert model.versions.find("metrics.auc >= 0.9 and params.lr < 0.1")[0].label == "1.0.0"


def test_it_resumes_a_download_cut_at_half_with_a_range(alice_mv, tmp_path):
    """What a download cut off at 50% leaves (its part and the file's checksum), resumed
    by the next call with Range: it fetches only the second half, and the verified file is
    byte-identical."""
    local = tmp_path / "model.bin"
    payload = bytes(range(256)) * 16_384  # 4 MiB
    local.write_bytes(payload)
    version = alice_mv.create_registered_model("resumed").create_version(
        artifacts={"model.bin": str(local)}
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".model.bin.part").write_bytes(payload[: len(payload) // 2])
    (dest / ".model.bin.part.sha256").write_text(hashlib.sha256(payload).hexdigest())
    seen = []
    target = version.download_artifact(
        "model.bin", dest, progress=lambda done, total: seen.append((done, total))
    )
    assert target.read_bytes() == payload
    assert seen[0] == (len(payload) // 2, len(payload))  # started at the half it had
    assert sorted(p.name for p in dest.iterdir()) == ["model.bin"]


def test_it_raises_and_keeps_nothing_when_a_download_mismatches(alice_mv, tmp_path):
    local = tmp_path / "model.bin"
    local.write_bytes(b"original bytes")
    version = alice_mv.create_registered_model("tampered").create_version(
        artifacts={"model.bin": str(local)}
    )
    sha256 = version.artifacts[0]["sha256"]
    # The stored bytes rot behind the registry's back; the header still names the original.
    stored = Path(settings.ARTIFACT_ROOT) / blob_key(sha256)
    stored.write_bytes(b"rotten bytes!!")
    with pytest.raises(ChecksumMismatch) as raised:
        version.download_artifact("model.bin", tmp_path / "dest")
    assert raised.value.expected == sha256
    assert list((tmp_path / "dest").iterdir()) == []


def test_it_raises_typed_errors_with_the_servers_message(alice_mv, live_server, carol, mallory):
    version = alice_mv.create_registered_model("refusals").create_version(Closed())
    with pytest.raises(LockedError) as locked:
        version.upload_artifact("late.txt", __file__)
    assert "closed" in locked.value.message and locked.value.code == "locked"
    with _client(live_server, carol) as carol_mv:
        seen_by_carol = carol_mv.get_registered_model("refusals").get_version(version.number)
        with pytest.raises(PermissionDenied):
            seen_by_carol.change_stage(Staging("please"))
    with pytest.raises(InvalidRequest) as invalid:
        alice_mv.get_registered_model("refusals").versions.find("stage = staging")
    assert invalid.value.message.startswith("at column 7: expected '=='")
    with _client(live_server, mallory) as mallory_mv:
        mallory_mv.org = "acme"
        with pytest.raises(NotFound):
            mallory_mv.get_registered_model("refusals")


def test_it_promotes_a_branch_version_and_reads_its_lineage(alice_mv, admin_mv):
    model = alice_mv.create_registered_model("experiments")
    assert [b["name"] for b in model.branches()] == ["main"]
    assert model.create_branch("try-gbm")["protected"] is False
    experimental = model.create_version(branch="try-gbm", params={"depth": 6})
    assert experimental.branch == "try-gbm"
    with pytest.raises(InvalidRequest, match="protected branch"):
        experimental.change_stage(Production("straight from the branch"))

    promoted = experimental.promote(label="2.0.0")
    assert (promoted.branch, promoted.label, promoted.params) == ("main", "2.0.0", {"depth": 6})
    lineage = promoted.lineage()
    assert [p["number"] for p in lineage["parents"]] == [experimental.number]
    assert [c["number"] for c in experimental.lineage()["children"]] == [promoted.number]
    with pytest.raises(InvalidRequest, match="already on main"):
        promoted.promote()


def test_it_flags_a_version_and_a_writer_resolves_it(live_server, carol, alice_mv):
    version = alice_mv.create_registered_model("monitored").create_version()
    with _client(live_server, carol) as carol_mv:
        seen = carol_mv.get_registered_model("monitored").get_version(version.number)
        with pytest.raises(InvalidRequest, match="digest"):
            seen.flag("drift", digest="sha256:" + "0" * 64)
        flag = seen.flag("AUC dropped to 0.61", severity="high", digest=seen.digest)
        assert (flag.status, flag.severity) == ("open", "high")
        with pytest.raises(PermissionDenied):
            flag.resolve("not mine to close")
    assert [f.id for f in version.flags("open")] == [flag.id]
    assert [v.number for v in alice_mv.search_versions("flagged == true")] == [version.number]
    document = version.documentation()
    flagged = next(s for s in document["sections"] if s["id"] == "flags")
    assert "AUC dropped to 0.61" in str(flagged)
    assert "Technical documentation" in version.documentation("md")

    resolved = version.flags()[0].resolve("retrained")
    assert resolved.status == "resolved"
    assert version.flags("open") == []
    assert alice_mv.search_versions("flagged == true") == []


def test_it_names_versions_by_alias_and_requests_a_protected_alias(
    alice_mv, admin_mv, admin, tmp_path
):
    from registry.models import RegisteredModel
    from registry.services.aliases import alias_protect

    local = tmp_path / "model.bin"
    local.write_bytes(b"champion weights")
    model = alice_mv.create_registered_model("aliased")
    v1 = model.create_version(artifacts={"model.bin": str(local)})
    v2 = model.create_version(parents=[v1])
    assert model.set_alias("champion", v1, "first")["version"] == v1.number
    assert alice_mv.get_version("aliased@champion").digest == v1.digest
    assert model.get_version("champion").number == v1.number
    child = model.create_version(parents=["aliased@champion"])
    assert [p["number"] for p in child.parents] == [v1.number]
    target = alice_mv.get_version("aliased@champion").download_artifact("model.bin", tmp_path / "d")
    assert target.read_bytes() == b"champion weights"

    alias_protect(actor=admin, model=RegisteredModel.objects.get(name="aliased"), name="champion")
    with pytest.raises(PermissionDenied, match="request the change for review"):
        model.set_alias("champion", v2)
    request = model.request_alias("champion", v2, "v2 wins the A/B test")
    assert (request.kind, request.status, request.version) == ("alias_move", "pending", 2)
    pending = admin_mv.pending_approvals()
    assert [r.id for r in pending] == [request.id]
    assert pending[0].approve("agreed").status == "approved"
    assert alice_mv.get_version("aliased@champion").number == v2.number
    assert model.aliases() == [{"name": "champion", "version": v2.number, "protected": True}]
    with pytest.raises(NotFound):
        alice_mv.get_version("aliased@nobody")
