"""The client and the CLI against a live server for the verbs every surface has (issue 20):
sharing, compare and trend, alias requests in the review queue, lookups by alias and by
digest, comments, flags, branches, documentation and the activity log with its export."""

import io
import json

import pytest

from registry.demo import ensure_shared_model
from registry.models import ActivityEvent, Alias
from registry.services.aliases import alias_protect, alias_set
from registry.services.orgs import team_create
from registry.services.registered_models import model_create
from registry.services.tokens import token_create
from registry.services.versions import version_create

modelvault = pytest.importorskip(
    "modelvault", reason="the client is not installed: pip install -e ./client"
)
from modelvault import Client  # noqa: E402
from modelvault.cli import main  # noqa: E402
from modelvault.errors import InvalidRequest, NotFound, PermissionDenied  # noqa: E402


@pytest.fixture
def server(live_server, cast):
    """acme/fraud (admin owns it; alice writes and approves, bob approves, carol views) with
    three versions, and a client and a CLI per member of the cast."""
    model = ensure_shared_model(cast, "fraud")
    for auc, lr in ((0.8, 0.1), (0.85, 0.05), (0.9, 0.05)):
        version_create(actor=cast.alice, model=model, params={"lr": lr}, metrics={"auc": auc})
    tokens = {
        name: token_create(actor=cast.users[name], user=cast.users[name], name="t")[1]
        for name in ("admin", "alice", "bob", "carol", "mallory")
    }
    clients = {name: Client(live_server.url, token=t, org="acme") for name, t in tokens.items()}

    def cli(name: str, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        args = ["--url", live_server.url, "--token", tokens[name], "--org", "acme", "-q", *argv]
        return main(args, stdout=out, stderr=err), out.getvalue(), err.getvalue()

    yield {"model": model, "cast": cast, "cli": cli, **clients}
    for client in clients.values():
        client.close()


# Sharing


def test_it_keeps_grants_in_code(server):
    ops = team_create(actor=server["cast"].admin, org=server["cast"].acme, name="ops")
    fraud = server["admin"].get_registered_model("fraud")
    fraud.grants.add("write", user="carol")
    fraud.grants.add("approve", team=ops.name)
    assert {"permission": "write", "user": "carol", "team": None} in fraud.grants.list()
    assert {"permission": "approve", "user": None, "team": "ops"} in fraud.grants.list()
    fraud.grants.remove("write", user="carol")
    assert {"permission": "write", "user": "carol", "team": None} not in fraud.grants.list()
    with pytest.raises(NotFound, match="holds no write grant"):
        fraud.grants.remove("write", user="carol")
    with pytest.raises(PermissionDenied, match="owner or an org admin"):
        server["alice"].get_registered_model("fraud").grants.add("view", user="carol")
    with pytest.raises(InvalidRequest, match="not a member"):
        fraud.grants.add("view", user="mallory")


def test_it_hides_grants_of_a_model_the_caller_may_not_view(server):
    with pytest.raises(NotFound):
        server["mallory"].get_registered_model("fraud")
    with pytest.raises(NotFound):
        server["mallory"].json("GET", "/orgs/acme/models/fraud/grants")


def test_it_shares_from_the_command_line(server):
    cli = server["cli"]
    assert cli("admin", "grants", "add", "fraud", "write", "--user", "carol") == (
        0,
        "granted user:carol\twrite\n",
        "",
    )
    code, out, _ = cli("admin", "grants", "list", "fraud")
    assert code == 0 and "user:carol\twrite\n" in out and "user:alice\tapprove\n" in out
    assert cli("admin", "grants", "remove", "fraud", "write", "--user", "carol")[0] == 0
    assert "user:carol\twrite" not in cli("admin", "grants", "list", "fraud")[1]
    code, _, err = cli("alice", "grants", "add", "fraud", "view", "--user", "carol")
    assert code == 1 and err.startswith("modelvault: error: sharing a model needs its owner")
    code, _, err = cli("mallory", "grants", "list", "fraud")
    assert (code, err) == (1, "modelvault: error: model fraud not found\n")
    # Neither or both of --user and --team is a usage error, before any request.
    with pytest.raises(SystemExit) as exited:
        cli("admin", "grants", "add", "fraud", "view")
    assert exited.value.code == 2


# Compare and trend


def test_it_compares_versions_and_follows_a_metric(server):
    fraud = server["carol"].get_registered_model("fraud")
    found = fraud.compare(1, 3)
    assert [v["number"] for v in found["versions"]] == [1, 3]
    assert found["sections"]["params"] == [{"key": "lr", "values": [0.1, 0.05], "differs": True}]
    assert found["metrics"] == [{"name": "auc", "values": [0.8, 0.9]}]
    assert [v["number"] for v in fraud.compare()["versions"]] == [2, 3]
    with pytest.raises(InvalidRequest, match="compare 2 to 5"):
        fraud.compare(1)
    trend = fraud.trend("auc")
    assert [(p["version"], p["value"]) for p in trend["points"]] == [(1, 0.8), (2, 0.85), (3, 0.9)]
    assert [p["version"] for p in fraud.trend(last=2)["points"]] == [2, 3]


def test_it_compares_and_draws_a_trend_on_the_command_line(server):
    cli = server["cli"]
    code, out, _ = cli("carol", "compare", "fraud", "1", "2")
    assert code == 0
    assert out.splitlines() == [
        "section\tkey\tv1\tv2",
        "*params\tlr\t0.1\t0.05",
        "*metrics\tauc\t0.8\t0.85",
    ]
    assert (
        json.loads(cli("carol", "compare", "fraud", "2", "3", "--json")[1])["versions"][0]["number"]
        == 2
    )
    assert cli("carol", "trend", "fraud")[1] == "# auc\nv1\t0.8\nv2\t0.85\nv3\t0.9\n"
    code, _, err = cli("carol", "compare", "fraud", "1", "1")
    assert (code, "compare 2 to 5 different versions" in err) == (1, True)


# Aliases: lookups, requests in the review queue


def test_it_requests_a_protected_alias_and_finds_it_pending_like_a_stage_request(server):
    cast, model = server["cast"], server["model"]
    first = model.versions.get(number=1)
    alias_set(actor=cast.admin, model=model, name="champion", version=first)
    alias_protect(actor=cast.admin, model=model, name="champion")
    cli = server["cli"]
    code, _, err = cli("alice", "alias", "fraud", "champion", "3")
    assert code == 1 and "is protected: request the change" in err
    code, out, _ = cli("alice", "alias", "fraud", "champion", "3", "--request", "-m", "v3")
    assert code == 0 and "@champion -> v3, pending" in out
    pending = server["bob"].pending_approvals()
    assert [(r.kind, r.alias, r.version) for r in pending] == [("alias_move", "champion", 3)]
    code, out, _ = cli("bob", "pending")
    assert f"request {pending[0].id}: fraud @champion -> v3, pending" in out
    assert cli("bob", "approve", str(pending[0].id), "-m", "agreed")[0] == 0
    assert Alias.objects.get(model=model, name="champion").version.number == 3
    assert server["carol"].get_version("fraud@champion").number == 3
    assert cli("carol", "aliases", "fraud")[1] == "fraud@champion\tv3\tprotected\n"


def test_it_sets_and_removes_an_unprotected_alias_on_the_command_line(server):
    cli = server["cli"]
    assert cli("alice", "alias", "fraud", "staging-eu", "2")[1] == "fraud@staging-eu -> v2\n"
    assert server["carol"].get_registered_model("fraud").get_version("staging-eu").number == 2
    assert cli("alice", "alias", "fraud", "staging-eu", "--remove")[0] == 0
    with pytest.raises(NotFound):
        server["carol"].get_version("fraud@staging-eu")


def test_it_finds_versions_by_digest(server):
    version = server["carol"].get_version("fraud", 2)
    found = server["carol"].find_by_digest(version.digest)
    assert [(v.model, v.number) for v in found] == [("fraud", 2)]
    assert server["mallory"].find_by_digest(version.digest) == []
    code, out, _ = server["cli"]("carol", "digest", version.digest)
    assert code == 0 and out.split("\t")[:2] == ["fraud", "2"]


# Comments, flags, branches, documentation, models


def test_it_comments_flags_and_resolves(server):
    cli = server["cli"]
    assert cli("carol", "comment", "fraud", "-m", "retrain monthly?")[0] == 0
    assert cli("carol", "comment", "fraud", "2", "-m", "why lr 0.05?")[0] == 0
    model_comments = server["alice"].get_registered_model("fraud").comments.list()
    assert [c["body"] for c in model_comments] == ["retrain monthly?"]
    assert "why lr 0.05?" in cli("alice", "comments", "fraud", "2")[1]
    code, out, _ = cli("carol", "flag", "fraud", "3", "-m", "AUC fell", "--severity", "high")
    flag_id = out.split("\t")[0]
    assert code == 0 and out.split("\t")[3:5] == ["high", "open"]
    assert cli("carol", "resolve", flag_id, "-m", "fixed")[0] == 1  # a viewer may not
    assert cli("alice", "resolve", flag_id, "-m", "retrained")[0] == 0
    assert "\tresolved\t" in cli("carol", "flags", "fraud", "3")[1]


def test_it_branches_promotes_and_documents(server, tmp_path):
    cli = server["cli"]
    assert cli("alice", "branch", "fraud", "exp") == (0, "fraud:exp created\n", "")
    assert cli("carol", "branches", "fraud")[1] == "exp\t-\nmain\tprotected\n"
    model = server["alice"].get_registered_model("fraud")
    model.create_version(branch="exp", params={"lr": 0.2})
    code, out, _ = cli("alice", "promote", "fraud", "4", "--label", "2.0.0")
    assert code == 0 and out.split("\t")[:5] == ["fraud", "5", "unassigned", "open", "2.0.0"]
    target = tmp_path / "fraud-v5.md"
    assert cli("carol", "docs", "fraud", "5", "-o", str(target))[0] == 0
    assert "fraud" in target.read_text()
    assert json.loads(cli("carol", "docs", "fraud", "5", "--format", "json")[1])


def test_it_lists_models_you_may_view(server):
    model_create(actor=server["cast"].mallory, org=server["cast"].globex, name="radar")
    assert server["cli"]("carol", "models")[1].split("\t")[0] == "fraud"
    assert server["cli"]("carol", "models", "--stage", "production")[1] == ""
    assert [m.name for m in server["carol"].list_registered_models()] == ["fraud"]


# Activity


def test_it_reads_and_exports_the_activity_log(server, tmp_path):
    events = list(server["carol"].activity(model="fraud"))
    assert [e["verb"] for e in events][-3:] == ["version.created"] * 3
    code, out, _ = server["cli"]("carol", "activity", "--model", "fraud", "--json")
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [
        e["seq"] for e in events
    ]
    path = server["carol"].export_activity(tmp_path, format="jsonl", model="fraud")
    assert path.parent == tmp_path and path.name.endswith(".jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(events) + 2  # the header and the trailer
    code, out, _ = server["cli"](
        "carol", "activity", "--model", "fraud", "--export", "csv", "-o", str(tmp_path / "a.csv")
    )
    assert (code, out) == (0, f"{tmp_path / 'a.csv'}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "a.csv"])
    assert ActivityEvent.objects.filter(model_id=server["model"].pk).count() == len(events)
