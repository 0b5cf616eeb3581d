"""The client against a mocked API (httpx.MockTransport): paths, bodies, pagination,
errors, streamed and verified artifacts, progress."""

import hashlib
import json

import httpx
import modelvault
import pytest
from fakeapi import BASE, PREFIX, FakeAPI, request_json, version_json
from modelvault import Client
from modelvault.errors import (
    ChecksumMismatch,
    Conflict,
    InvalidRequest,
    LockedError,
    ModelvaultError,
    NotFound,
    PermissionDenied,
    ServerError,
    TooLarge,
    Unauthenticated,
)
from modelvault.lock import Closed, Open, Redact, closed, lock_word, open, redact
from modelvault.stage_change import Archived, Development, Production, Staging


@pytest.fixture
def api():
    return FakeAPI()


def test_it_exports_the_names_of_spec_4_3():
    assert {"Client", "LockedError", "PermissionDenied", "NotFound", "Conflict"} <= set(
        modelvault.__all__
    )
    assert [str(x) for x in (open, redact, closed)] == ["open", "redact", "closed"]
    assert Open() == open and Redact() == "redact" and Closed() != Open()
    assert lock_word(Closed) == "closed" and lock_word("REDACT") == "redact"
    with pytest.raises(ValueError):
        lock_word("sealed")
    assert Staging("Undergoing final testing.").payload() == {
        "stage": "staging",
        "comment": "Undergoing final testing.",
        "archive_existing": False,
    }
    assert Production("go", archive_existing=True).payload()["archive_existing"] is True
    assert (Development().stage, Archived().stage) == ("development", "archived")


def test_it_reads_url_token_and_org_from_the_environment(api, monkeypatch):
    monkeypatch.setenv("MODELVAULT_URL", BASE + "/")
    monkeypatch.setenv("MODELVAULT_TOKEN", "mv_env")
    monkeypatch.setenv("MODELVAULT_ORG", "acme")
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    client = Client(transport=httpx.MockTransport(api))
    assert client.get_registered_model("fraud").name == "fraud"
    assert str(api.calls[0].url) == f"{BASE}{PREFIX}/models/fraud"
    assert api.calls[0].headers["Authorization"] == "Bearer mv_env"


def test_it_needs_a_url(monkeypatch):
    monkeypatch.delenv("MODELVAULT_URL", raising=False)
    with pytest.raises(ModelvaultError, match="MODELVAULT_URL"):
        Client()


def test_it_needs_an_org(api, monkeypatch):
    monkeypatch.delenv("MODELVAULT_ORG", raising=False)
    client = Client(BASE, transport=httpx.MockTransport(api))
    with pytest.raises(ModelvaultError, match="MODELVAULT_ORG"):
        client.get_registered_model("fraud")
    assert api.calls == []


def test_it_creates_a_model_with_a_made_up_name(api):
    api.on("POST", f"{PREFIX}/models", lambda r: httpx.Response(201, json=json.loads(r.content)))
    model = api.client().create_registered_model(description="scores")
    sent = json.loads(api.bodies[0])
    assert sent["description"] == "scores"
    assert model.name == sent["name"]
    assert model.name.startswith("model-") and len(model.name) == len("model-") + 8
    int(model.name.removeprefix("model-"), 16)
    named = api.client().create_registered_model("fraud", description="x")
    assert named.name == "fraud"


def test_it_creates_a_version_with_a_positional_or_keyword_lock_level(api):
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(1, lock_level="closed")))
    model = api.client().get_registered_model("fraud")
    model.create_version(Closed())
    model.create_version(lock_level=Redact(), label="1.0.0", params={"lr": 0.1}, metrics={"auc": 1})
    model.create_version()
    bodies = [json.loads(b) for b in api.bodies[1:]]
    assert bodies[0] == {"lock_level": "closed"}
    assert bodies[1] == {
        "lock_level": "redact",
        "label": "1.0.0",
        "params": {"lr": 0.1},
        "metrics": {"auc": 1},
    }
    assert bodies[2] == {}


def test_it_uploads_artifacts_then_raises_the_lock(api, tmp_path):
    local = tmp_path / "model.pkl"
    payload = b"weights" * 100_000
    local.write_bytes(payload)
    path = f"{PREFIX}/models/fraud/versions/3"
    uploaded = {}

    def put(request):
        uploaded["body"] = request.content
        uploaded["headers"] = request.headers
        sha = hashlib.sha256(request.content).hexdigest()
        return httpx.Response(
            201, json={"path": "dir/model.pkl", "size": len(payload), "sha256": sha}
        )

    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(3)))
    api.on("PUT", f"{path}/artifacts/dir/model.pkl", put)
    api.on("PUT", f"{path}/lock", (200, version_json(3, lock_level="redact")))
    seen = []
    model = api.client().get_registered_model("fraud")
    version = model.create_version(
        lock_level=Redact(),
        artifacts={"dir/model.pkl": str(local)},
        progress=lambda done, total: seen.append((done, total)),
    )
    methods = [(c.method, c.url.path) for c in api.calls[1:]]
    assert methods == [
        ("POST", f"{PREFIX}/models/fraud/versions"),
        ("PUT", f"{path}/artifacts/dir/model.pkl"),
        ("PUT", f"{path}/lock"),
    ]
    assert json.loads(api.bodies[1]) == {}  # registered at the org default
    assert json.loads(api.bodies[3]) == {"level": "redact"}
    assert uploaded["body"] == payload
    assert uploaded["headers"]["X-Checksum-Sha256"] == hashlib.sha256(payload).hexdigest()
    assert uploaded["headers"]["Content-Length"] == str(len(payload))
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert version.lock_level == "redact"


def test_it_sets_the_lock_level_and_reads_the_stage_from_the_server(api):
    path = f"{PREFIX}/models/fraud/versions/1"
    stages = iter(["unassigned", "staging"])
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, lambda r: httpx.Response(200, json=version_json(1, stage=next(stages))))
    api.on("PUT", f"{path}/lock", (200, version_json(1, lock_level="closed")))
    version = api.client().get_registered_model("fraud").get_version(1)
    assert version.set_lock_level(Closed()) is version
    assert version.lock_level == "closed"
    assert json.loads(api.bodies[-1]) == {"level": "closed"}
    assert version.stage == "staging"
    with pytest.raises(StopIteration):
        version.stage  # noqa: B018 - every read goes to the server


def test_it_requests_a_stage_change_and_reviews_it(api):
    path = f"{PREFIX}/models/fraud/versions/1"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, (200, version_json(1)))
    api.on("POST", f"{path}/stage-requests", (201, request_json(7)))
    api.on("POST", "/api/v1/stage-requests/7/approve", (200, request_json(7, status="approved")))
    api.on("POST", "/api/v1/stage-requests/7/reject", (200, request_json(7, status="rejected")))
    api.on("POST", "/api/v1/stage-requests/7/cancel", (200, request_json(7, status="cancelled")))
    version = api.client().get_registered_model("fraud").get_version(1)
    request = version.change_stage(Staging("Undergoing final testing."))
    assert json.loads(api.bodies[-1]) == {
        "stage": "staging",
        "comment": "Undergoing final testing.",
        "archive_existing": False,
    }
    assert (request.id, request.status) == (7, "pending")
    assert request.approve("looks good").status == "approved"
    assert json.loads(api.bodies[-1]) == {"comment": "looks good"}
    assert request.reject("no").status == "rejected"
    assert request.cancel().status == "cancelled"
    assert json.loads(api.bodies[-1]) == {"comment": ""}


def test_it_follows_cursors_for_find_and_pending_approvals(api):
    def versions(request):
        assert request.url.params["q"] == "stage == staging"
        if request.url.params.get("cursor") == "p2":
            return httpx.Response(200, json={"items": [version_json(1)], "next": None})
        return httpx.Response(200, json={"items": [version_json(3), version_json(2)], "next": "p2"})

    def pending(request):
        if request.url.params.get("cursor") == "n":
            return httpx.Response(200, json={"items": [request_json(8)], "next": None})
        return httpx.Response(200, json={"items": [request_json(9)], "next": "n"})

    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", f"{PREFIX}/models/fraud/versions", versions)
    api.on("GET", f"{PREFIX}/approvals/pending", pending)
    client = api.client()
    found = client.get_registered_model("fraud").versions.find("stage == staging")
    assert [v.number for v in found] == [3, 2, 1]
    assert found[0].model == "fraud" and found[0].digest.startswith("sha256:")
    assert [r.id for r in client.pending_approvals()] == [9, 8]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "invalid", InvalidRequest),
        (401, "unauthenticated", Unauthenticated),
        (403, "forbidden", PermissionDenied),
        (404, "not_found", NotFound),
        (409, "conflict", Conflict),
        (413, "too_large", TooLarge),
        (423, "locked", LockedError),
        (500, "server_error", ServerError),
    ],
)
def test_it_raises_typed_errors_with_the_servers_message(api, status, code, error):
    body = {"error": {"code": code, "message": f"refused: {code}", "details": {"why": 1}}}
    api.on("GET", f"{PREFIX}/models/fraud", (status, body))
    with pytest.raises(error) as raised:
        api.client().get_registered_model("fraud")
    assert raised.value.message == f"refused: {code}"
    assert str(raised.value) == f"refused: {code}"
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.details == {"why": 1}
    assert isinstance(raised.value, ModelvaultError)


def test_it_raises_a_typed_error_for_a_body_that_is_not_the_error_json(api):
    api.on("GET", f"{PREFIX}/models/fraud", lambda r: httpx.Response(502, text="Bad gateway"))
    with pytest.raises(ServerError, match="502 Bad Gateway: Bad gateway"):
        api.client().get_registered_model("fraud")


def _download_api(api, payload: bytes, checksum: str):
    path = f"{PREFIX}/models/fraud/versions/1"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, (200, version_json(1)))
    api.on(
        "GET",
        f"{path}/artifacts/weights/model.pkl",
        lambda r: httpx.Response(
            200,
            content=payload,
            headers={"X-Checksum-Sha256": checksum, "ETag": f'"{checksum}"'},
        ),
    )
    return api.client().get_registered_model("fraud").get_version(1)


def test_it_downloads_and_verifies_an_artifact(api, tmp_path):
    payload = b"\x00model bytes" * 50_000
    version = _download_api(api, payload, hashlib.sha256(payload).hexdigest())
    seen = []
    target = version.download_artifact(
        "weights/model.pkl", tmp_path / "dest", progress=lambda d, t: seen.append((d, t))
    )
    assert target == tmp_path / "dest" / "weights" / "model.pkl"
    assert target.read_bytes() == payload
    assert seen[0] == (0, len(payload)) and seen[-1] == (len(payload), len(payload))
    assert [p.name for p in target.parent.iterdir()] == ["model.pkl"]


def test_it_deletes_a_download_whose_checksum_mismatches(api, tmp_path):
    payload = b"tampered"
    version = _download_api(api, payload, hashlib.sha256(b"original").hexdigest())
    (tmp_path / "weights").mkdir()
    with pytest.raises(ChecksumMismatch) as raised:
        version.download_artifact("weights/model.pkl", tmp_path)
    assert raised.value.actual == hashlib.sha256(payload).hexdigest()
    assert list((tmp_path / "weights").iterdir()) == []


class CutOff(httpx.SyncByteStream):
    """A body whose connection is lost after `sent` bytes."""

    def __init__(self, payload: bytes, sent: int):
        self.payload, self.sent = payload, sent

    def __iter__(self):
        yield self.payload[: self.sent]
        raise httpx.ReadError("connection lost")


def _flaky_api(api, payload: bytes, cut_first: bool = True):
    """A download cut off at half its length on the first GET; a Range is honoured after."""
    checksum = hashlib.sha256(payload).hexdigest()
    headers = {"X-Checksum-Sha256": checksum, "ETag": f'"{checksum}"'}
    gets = []

    def serve(request: httpx.Request) -> httpx.Response:
        gets.append(dict(request.headers))
        asked = request.headers.get("Range")
        if asked and request.headers.get("If-Range") == f'"{checksum}"':
            first = int(asked.removeprefix("bytes=").rstrip("-"))
            rest = payload[first:]
            ranged = {
                **headers,
                "Content-Range": f"bytes {first}-{len(payload) - 1}/{len(payload)}",
            }
            return httpx.Response(206, content=rest, headers=ranged)
        if cut_first and len(gets) == 1:
            sized = {**headers, "Content-Length": str(len(payload))}
            return httpx.Response(200, stream=CutOff(payload, len(payload) // 2), headers=sized)
        return httpx.Response(200, content=payload, headers=headers)

    path = f"{PREFIX}/models/fraud/versions/1"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, (200, version_json(1)))
    api.on("GET", f"{path}/artifacts/model.bin", serve)
    return api.client().get_registered_model("fraud").get_version(1), gets


def test_it_resumes_a_download_cut_off_at_half_with_a_range(api, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB
    version, gets = _flaky_api(api, payload)
    target = version.download_artifact("model.bin", tmp_path)
    assert target.read_bytes() == payload
    assert len(gets) == 2 and "range" not in gets[0]
    assert gets[1]["range"] == f"bytes={len(payload) // 2}-"
    assert gets[1]["if-range"] == f'"{hashlib.sha256(payload).hexdigest()}"'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_it_resumes_a_part_left_by_an_earlier_call(api, tmp_path):
    payload = b"0123456789" * 100_000
    version, gets = _flaky_api(api, payload)
    with pytest.raises(httpx.ReadError):
        version.download_artifact("model.bin", tmp_path, attempts=1)
    assert (tmp_path / ".model.bin.part").stat().st_size == len(payload) // 2
    assert not (tmp_path / "model.bin").exists()
    target = version.download_artifact("model.bin", tmp_path)
    assert target.read_bytes() == payload and gets[-1]["range"] == f"bytes={len(payload) // 2}-"


def test_it_starts_again_when_the_server_has_another_file(api, tmp_path):
    """The part is of a file the server no longer has: If-Range makes it send the whole new
    one, which replaces the part."""
    (tmp_path / ".model.bin.part").write_bytes(b"old bytes")
    (tmp_path / ".model.bin.part.sha256").write_text("0" * 64)
    payload = b"the new file"
    version, gets = _flaky_api(api, payload, cut_first=False)
    assert version.download_artifact("model.bin", tmp_path).read_bytes() == payload
    assert gets[0]["range"] == "bytes=9-"


def test_it_refuses_to_download_outside_the_destination(api, tmp_path):
    version = _download_api(api, b"x", hashlib.sha256(b"x").hexdigest())
    for path in ("../evil", "/etc/passwd", "a\\b"):
        with pytest.raises(ModelvaultError, match="outside dest_dir"):
            version.download_artifact(path, tmp_path)


def test_it_maps_a_refused_download_to_its_error(api, tmp_path):
    path = f"{PREFIX}/models/fraud/versions/1"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, (200, version_json(1)))
    version = api.client().get_registered_model("fraud").get_version(1)
    with pytest.raises(NotFound, match="no route"):
        version.download_artifact("missing.bin", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_it_lists_artifacts_as_the_server_has_them_now(api):
    path = f"{PREFIX}/models/fraud/versions/1"
    listed = {"items": [{"path": "a.bin", "size": 1, "sha256": "ab" * 32}], "next": None}
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("GET", path, (200, version_json(1)))
    api.on("GET", f"{path}/artifacts", (200, listed))
    version = api.client().get_registered_model("fraud").versions.get(1)
    assert version.artifacts == []  # as last read
    assert version.list_artifacts() == listed["items"]


# Aliases (`model@alias` names a version anywhere; a protected alias moves through review)


def test_it_gets_a_version_by_alias_or_by_number(api):
    api.on("GET", f"{PREFIX}/models/fraud/versions/@champion", (200, version_json(3)))
    api.on("GET", f"{PREFIX}/models/fraud/versions/2", (200, version_json(2)))
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    client = api.client()
    assert client.get_version("fraud@champion").number == 3
    assert client.get_version("fraud", 2).number == 2
    model = client.get_registered_model("fraud")
    assert model.get_version("champion").number == 3
    assert model.get_version("@champion").number == 3
    assert model.versions.get(2).number == 2
    with pytest.raises(ModelvaultError, match="not both"):
        client.get_version("fraud@champion", 3)
    with pytest.raises(ModelvaultError, match="fraud@<alias>"):
        client.get_version("fraud")


def test_it_sets_removes_and_lists_aliases(api):
    aliases = f"{PREFIX}/models/fraud/aliases"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on(
        "PUT", f"{aliases}/champion", (200, {"name": "champion", "version": 3, "protected": False})
    )
    api.on("DELETE", f"{aliases}/champion", lambda r: httpx.Response(204))
    api.on("GET", aliases, (200, [{"name": "champion", "version": 3, "protected": False}]))
    model = api.client().get_registered_model("fraud")
    version = modelvault.ModelVersion(model.client, version_json(3))
    assert model.set_alias("champion", version, "A/B winner")["version"] == 3
    assert json.loads(api.bodies[-1]) == {"version": 3, "comment": "A/B winner"}
    model.set_alias("champion", 3)
    assert json.loads(api.bodies[-1]) == {"version": 3, "comment": ""}
    assert model.aliases() == [{"name": "champion", "version": 3, "protected": False}]
    assert model.remove_alias("champion") is None
    assert api.calls[-1].method == "DELETE"


def test_it_requests_the_move_or_removal_of_a_protected_alias(api):
    requests = f"{PREFIX}/models/fraud/aliases/champion/requests"
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("POST", requests, (201, request_json(9, kind="alias_move", alias="champion")))
    api.on("POST", "/api/v1/stage-requests/9/approve", (200, request_json(9, status="approved")))
    model = api.client().get_registered_model("fraud")
    request = model.request_alias("champion", 3, "v3 wins")
    assert (request.id, request.status) == (9, "pending")
    assert repr(request) == "StageRequest(9, '@champion', 'pending')"
    assert json.loads(api.bodies[-1]) == {"version": 3, "comment": "v3 wins"}
    model.request_alias("champion", None)
    assert json.loads(api.bodies[-1]) == {"version": None, "comment": ""}
    assert request.approve("ok").status == "approved"


def test_it_registers_a_version_with_parents_by_alias_or_object(api):
    api.on("GET", f"{PREFIX}/models/fraud", (200, {"name": "fraud"}))
    api.on("POST", f"{PREFIX}/models/fraud/versions", (201, version_json(4)))
    model = api.client().get_registered_model("fraud")
    parent = modelvault.ModelVersion(model.client, version_json(2))
    model.create_version(parents=["fraud@champion", parent, {"model": "churn", "number": 1}])
    assert json.loads(api.bodies[-1])["parents"] == [
        "fraud@champion",
        {"model": "fraud", "number": 2},
        {"model": "churn", "number": 1},
    ]
