"""The client's and CLI's newer verbs, on a mocked transport: what each sends, and what it
makes of the answer (the live-server tests are tests/client/test_verbs_live.py)."""

import io

import httpx
import pytest
from fakeapi import PREFIX, FakeAPI, version_json
from modelvault import Client
from modelvault.cli import main
from modelvault.errors import ModelvaultError, NotFound


@pytest.fixture
def api():
    api = FakeAPI()
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    return api


def run(api: FakeAPI, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def factory(url=None, token=None, org=None):
        return Client("http://mv.test", org="acme", transport=httpx.MockTransport(api))

    return (
        main(list(argv), client_factory=factory, stdout=out, stderr=err),
        out.getvalue(),
        err.getvalue(),
    )


def test_it_grants_and_revokes_with_exactly_one_grantee(api):
    grant = {"permission": "approve", "user": None, "team": "ops"}
    api.on("POST", f"{PREFIX}/models/fraud/grants", (201, grant))
    api.on("DELETE", f"{PREFIX}/models/fraud/grants", (204, None))
    grants = api.client().get_registered_model("fraud").grants
    assert grants.add("approve", team="ops") == grant
    assert api.bodies[-1] == b'{"permission":"approve","team":"ops"}'
    grants.remove("write", user="carol")
    assert dict(api.calls[-1].url.params) == {"permission": "write", "user": "carol"}
    calls = len(api.calls)
    with pytest.raises(ModelvaultError, match="exactly one"):
        grants.add("view", user="carol", team="ops")
    with pytest.raises(ModelvaultError, match="exactly one"):
        grants.remove("view")
    assert len(api.calls) == calls  # refused before sending


def test_it_sends_the_versions_to_compare_and_the_trend_options(api):
    api.on("GET", f"{PREFIX}/models/fraud/compare", (200, {"versions": []}))
    api.on("GET", f"{PREFIX}/models/fraud/trend", (200, {"points": []}))
    model = api.client().get_registered_model("fraud")
    model.compare(3, 1)
    assert api.calls[-1].url.params.get_list("v") == ["3", "1"]
    model.compare()
    assert not api.calls[-1].url.params
    model.trend("auc", last=5)
    assert dict(api.calls[-1].url.params) == {"metric": "auc", "last": "5"}


def test_it_finds_by_digest_through_the_quoted_path(api):
    digest = "sha256:" + "a" * 64
    api.on(
        "GET",
        f"/api/v1/versions/by-digest/{digest}",
        (200, {"items": [version_json(2)], "next": None}),
    )
    found = api.client().find_by_digest(digest)
    assert [(v.model, v.number) for v in found] == [("fraud", 2)]
    assert api.calls[-1].url.raw_path.decode().endswith("by-digest/sha256%3A" + "a" * 64)


def test_it_exports_activity_under_the_servers_file_name(api, tmp_path):
    def export(request):
        return httpx.Response(
            200,
            content=b'{"header": 1}\n{"trailer": 1}\n',
            headers={"Content-Disposition": 'attachment; filename="acme-activity.jsonl"'},
        )

    api.on("GET", f"{PREFIX}/activity", export)
    path = api.client().export_activity(tmp_path, format="jsonl", model="fraud")
    assert path == tmp_path / "acme-activity.jsonl"
    assert path.read_bytes() == b'{"header": 1}\n{"trailer": 1}\n'
    assert dict(api.calls[-1].url.params) == {"format": "jsonl", "model": "fraud"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme-activity.jsonl"]
    with pytest.raises(ModelvaultError, match="jsonl or csv"):
        api.client().export_activity(tmp_path, format="xml")


def test_it_leaves_no_file_when_the_export_is_refused(api, tmp_path):
    with pytest.raises(NotFound):
        api.client().export_activity(tmp_path / "out.jsonl")  # no route: the fake's 404
    assert list(tmp_path.iterdir()) == []


def test_the_cli_prints_grants_and_a_comparison(api):
    api.on(
        "GET",
        f"{PREFIX}/models/fraud/grants",
        (200, {"items": [{"permission": "view", "user": "carol", "team": None}]}),
    )
    assert run(api, "grants", "list", "fraud") == (0, "user:carol\tview\n", "")
    compared = {
        "versions": [{"number": 1}, {"number": 2}],
        "sections": {
            "params": [
                {"key": "lr", "values": [0.1, None], "differs": True},
                {"key": "depth", "values": [4, 4], "differs": False},
            ]
        },
        "metrics": [],
    }
    api.on("GET", f"{PREFIX}/models/fraud/compare", (200, compared))
    code, out, _ = run(api, "compare", "fraud", "1", "2")
    assert out.splitlines() == ["section\tkey\tv1\tv2", "*params\tlr\t0.1\t-"]
    code, out, _ = run(api, "compare", "fraud", "1", "2", "--all")
    assert out.splitlines()[-1] == " params\tdepth\t4\t4"


def test_the_cli_says_a_refusal_on_one_line(api):
    api.on(
        "DELETE",
        f"{PREFIX}/models/fraud/grants",
        (404, {"error": {"code": "not_found", "message": "user carol holds no write grant"}}),
    )
    code, out, err = run(api, "grants", "remove", "fraud", "write", "--user", "carol")
    assert (code, out, err) == (1, "", "modelvault: error: user carol holds no write grant\n")
