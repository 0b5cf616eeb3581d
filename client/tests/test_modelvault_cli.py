"""The `modelvault` CLI: verbs call the API, errors are one line on stderr and exit 1."""

import hashlib
import io
import json

import httpx
import pytest
from fakeapi import PREFIX, FakeAPI, request_json, version_json
from modelvault import Client
from modelvault.cli import main


def run(api: FakeAPI, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def factory(url=None, token=None, org=None):
        return Client(
            url or "http://mv.test",
            token=token,
            org=org or "acme",
            transport=httpx.MockTransport(api),
        )

    code = main(list(argv), client_factory=factory, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def api():
    api = FakeAPI()
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", f"{PREFIX}/models/fraud/versions/1", (200, version_json(1)))
    return api


def test_it_registers_a_version_with_params_metrics_and_tags(api):
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(2, label="1.0.0")))
    code, out, err = run(
        api, "register", "fraud", "--label", "1.0.0", "--lock", "closed",
        "--param", "lr=0.01", "--param", "optimizer=adam", "--metric", "auc=0.93",
        "--tag", "team=nlp",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(api.bodies[-1]) == {
        "lock_level": "closed",
        "label": "1.0.0",
        "params": {"lr": 0.01, "optimizer": "adam"},
        "metrics": {"auc": 0.93},
        "tags": {"team": "nlp"},
    }
    assert out.split("\t")[:5] == ["fraud", "2", "unassigned", "open", "1.0.0"]


def test_it_creates_the_model_when_asked(api):
    api.routes.pop(("GET", f"{PREFIX}/models/fraud"))
    api.on("POST", f"{PREFIX}/models", (201, {"name": "fraud"}))
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(1)))
    assert run(api, "register", "fraud")[0] == 1
    code, _, err = run(api, "register", "fraud", "--create")
    assert (code, err) == (0, "")
    assert json.loads(api.bodies[-2])["name"] == "fraud"


def test_it_uploads_with_a_progress_bar_on_stderr(api, tmp_path):
    local = tmp_path / "m.bin"
    local.write_bytes(b"x" * 3_000_000)
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    api.on(
        "PUT",
        f"{PREFIX}/models/fraud/versions/1/artifacts/m.bin",
        (201, {"path": "m.bin", "size": 3_000_000, "sha256": sha}),
    )
    code, out, err = run(api, "upload", "fraud", "1", "m.bin", str(local))
    assert code == 0
    assert out == f"m.bin\t3000000\t{sha}\n"
    assert "100%" in err and "[" + "#" * 30 + "]" in err and err.endswith("\n")
    assert api.calls[-1].headers["X-Checksum-Sha256"] == sha


def test_it_requests_approves_rejects_and_cancels(api):
    api.on("POST", f"{PREFIX}/models/fraud/versions/1/stage-requests", (201, request_json(7)))
    api.on("POST", "/api/v1/stage-requests/7/approve", (200, request_json(7, status="approved")))
    api.on("POST", "/api/v1/stage-requests/7/reject", (200, request_json(7, status="rejected")))
    api.on("POST", "/api/v1/stage-requests/7/cancel", (200, request_json(7, status="cancelled")))
    code, out, _ = run(
        api, "request", "fraud", "1", "production", "-m", "ship", "--archive-existing"
    )
    assert code == 0 and "request 7" in out
    assert json.loads(api.bodies[-1]) == {
        "stage": "production",
        "comment": "ship",
        "archive_existing": True,
    }
    for verb, status in (("approve", "approved"), ("reject", "rejected"), ("cancel", "cancelled")):
        code, out, _ = run(api, verb, "7", "-m", "why")
        assert code == 0 and status in out
        assert json.loads(api.bodies[-1]) == {"comment": "why"}


def test_it_finds_versions_in_a_model_or_the_whole_org(api):
    page = {"items": [version_json(1, stage="staging")], "next": None}
    api.on("GET", f"{PREFIX}/models/fraud/versions", (200, page))
    api.on("GET", f"{PREFIX}/versions", (200, page))
    code, out, _ = run(api, "find", "stage == staging", "--model", "fraud")
    assert code == 0 and out.startswith("fraud\t1\tstaging")
    assert api.calls[-1].url.params["q"] == "stage == staging"
    code, out, _ = run(api, "find", "stage == staging", "--json")
    assert code == 0 and json.loads(out)["stage"] == "staging"
    assert api.calls[-1].url.path == f"{PREFIX}/versions"


def test_it_sets_a_lock_level(api):
    api.on(
        "PUT", f"{PREFIX}/models/fraud/versions/1/lock", (200, version_json(1, lock_level="redact"))
    )
    code, out, _ = run(api, "lock", "fraud", "1", "redact")
    assert code == 0 and "\tredact\t" in out
    assert json.loads(api.bodies[-1]) == {"level": "redact"}


def test_it_downloads_and_exits_1_on_a_checksum_mismatch(api, tmp_path):
    good = b"weights"
    checksum = {"value": hashlib.sha256(good).hexdigest()}
    api.on(
        "GET",
        f"{PREFIX}/models/fraud/versions/1/artifacts/m.bin",
        lambda r: httpx.Response(
            200, content=good, headers={"X-Checksum-Sha256": checksum["value"]}
        ),
    )
    code, out, _ = run(api, "-q", "download", "fraud", "1", "m.bin", str(tmp_path))
    assert code == 0 and (tmp_path / "m.bin").read_bytes() == good
    checksum["value"] = "0" * 64
    code, out, err = run(api, "download", "fraud", "1", "m.bin", str(tmp_path / "other"))
    assert code == 1 and out == ""
    assert err.splitlines()[-1].startswith("modelvault: error: m.bin: the download's SHA-256")
    assert not (tmp_path / "other" / "m.bin").exists()


@pytest.mark.parametrize(
    ("status", "code"), [(403, "forbidden"), (404, "not_found"), (423, "locked")]
)
def test_it_prints_one_line_on_stderr_and_exits_1_when_refused(api, status, code):
    body = {"error": {"code": code, "message": f"version 1 says {code}", "details": {}}}
    api.on("PUT", f"{PREFIX}/models/fraud/versions/1/lock", (status, body))
    exit_code, out, err = run(api, "lock", "fraud", "1", "open")
    assert (exit_code, out) == (1, "")
    assert err == f"modelvault: error: version 1 says {code}\n"


def test_it_exits_1_when_the_server_cannot_be_reached():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    exit_code, _, err = run(refuse, "find", "stage == staging")
    assert exit_code == 1
    assert err == "modelvault: error: cannot reach the server: connection refused\n"


def test_it_exits_1_for_a_missing_local_file(api):
    exit_code, _, err = run(api, "upload", "fraud", "1", "m.bin", "/nonexistent/m.bin")
    assert exit_code == 1
    assert err.startswith("modelvault: error: No such file or directory: /nonexistent/m.bin")


def test_it_exits_2_on_a_usage_error(api, capsys):
    with pytest.raises(SystemExit) as raised:
        run(api, "lock", "fraud", "1", "sealed")
    assert raised.value.code == 2
    assert "invalid choice: 'sealed'" in capsys.readouterr().err


def test_it_names_a_version_by_alias_in_every_verb(api, tmp_path):
    champion = f"{PREFIX}/models/fraud/versions/@champion"
    api.on("GET", champion, (200, version_json(1)))
    api.on(
        "GET",
        f"{PREFIX}/models/fraud/versions/1/artifacts/m.bin",
        lambda r: httpx.Response(
            200, content=b"w", headers={"X-Checksum-Sha256": hashlib.sha256(b"w").hexdigest()}
        ),
    )
    api.on(
        "PUT", f"{PREFIX}/models/fraud/versions/1/lock", (200, version_json(1, lock_level="closed"))
    )
    code, out, err = run(api, "show", "fraud@champion")
    assert (code, err) == (0, "") and out.startswith("fraud\t1\t")
    code, out, _ = run(api, "-q", "download", "fraud@champion", "m.bin", str(tmp_path))
    assert code == 0 and (tmp_path / "m.bin").read_bytes() == b"w"
    code, out, _ = run(api, "lock", "fraud@champion", "closed")
    assert code == 0 and "\tclosed\t" in out
    assert [c.url.path for c in api.calls].count(champion) == 3
    code, _, err = run(api, "lock", "fraud@champion", "2", "closed")
    assert code == 1 and "not both" in err
    code, _, err = run(api, "show", "fraud")
    assert code == 1 and "fraud NUMBER or fraud@ALIAS" in err


def test_it_sets_removes_and_requests_an_alias(api):
    aliases = f"{PREFIX}/models/fraud/aliases/champion"
    api.on("PUT", aliases, (200, {"name": "champion", "version": 3, "protected": False}))
    api.on("DELETE", aliases, lambda r: httpx.Response(204))
    api.on(
        "POST",
        f"{aliases}/requests",
        (201, request_json(8, kind="alias_move", alias="champion", version=3)),
    )
    code, out, _ = run(api, "alias", "fraud", "champion", "3", "-m", "A/B winner")
    assert (code, out) == (0, "fraud@champion -> v3\n")
    assert json.loads(api.bodies[-1]) == {"version": 3, "comment": "A/B winner"}
    code, out, _ = run(api, "alias", "fraud", "champion", "3", "--request", "-m", "please")
    assert code == 0 and out.startswith("request 8: fraud @champion -> v3, pending")
    code, out, _ = run(api, "alias", "fraud", "champion", "--remove")
    assert (code, out) == (0, "fraud@champion removed\n")
    code, _, err = run(api, "alias", "fraud", "champion")
    assert code == 1 and "--remove" in err


def test_it_registers_with_parents_by_alias_or_number(api):
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(2)))
    code, _, err = run(
        api, "register", "fraud", "--parent", "fraud@champion", "--parent", "churn:4"
    )
    assert (code, err) == (0, "")
    assert json.loads(api.bodies[-1])["parents"] == [
        "fraud@champion",
        {"model": "churn", "number": 4},
    ]
    code, _, err = run(api, "register", "fraud", "--parent", "fraud")
    assert code == 1 and "MODEL@ALIAS or MODEL:NUMBER" in err
