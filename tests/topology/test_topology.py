"""A journey across the production topology (tests/topology/stack.py): what one node does,
the other sees; the worker mails and posts; the checks an operator runs find nothing wrong;
and a node is unready while Redis is away and ready again when it is back.

The tests run in this order on one topology; each makes the models it needs."""

import hashlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from modelvault import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.topology.processes import reset_peak, status_kb, wait_until
from tests.topology.stack import FIGURES, ORG, Node, Topology

pytestmark = pytest.mark.topology

MB = 1024 * 1024
SIZE = 200 * MB
# What serving the artifact may add to a gunicorn worker's resident set: the body streams
# through in parts of 8 MiB (registry/s3.py) and chunks of 1 MiB, never whole.
GROWTH_LIMIT = 50 * MB
# Seconds the worker has to mail or post what a request started.
DELIVERY_TIMEOUT = 60


def write_random(path: Path, size: int, seed: int) -> str:
    """`size` bytes that no compression or deduplication shortens; their SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MB):
            block = rng.randbytes(MB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MB):
            digest.update(block)
    return digest.hexdigest()


class MemoryWatch(threading.Thread):
    """The resident set of every gunicorn worker of the nodes, sampled every 20 ms from
    /proc, against each worker's own when the watch began; the kernel's peak (VmHWM, reset
    when the watch begins) catches what falls between two samples."""

    def __init__(self, nodes: list[Node]):
        super().__init__(daemon=True)
        self.node_of = {pid: node.name for node in nodes for pid in node.workers()}
        self.nodes = nodes
        self.start_kb = {pid: status_kb(pid, "VmRSS") for pid in self.node_of}
        self.peak_kb = dict(self.start_kb)
        self.kernel_peak = all(reset_peak(pid) for pid in self.node_of)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.02):
            for pid in self.node_of:
                try:
                    self.peak_kb[pid] = max(self.peak_kb[pid], status_kb(pid, "VmRSS"))
                except OSError:  # gone: stop() says so
                    continue

    def stop(self) -> dict[str, dict[int, float]]:
        """{node: {worker pid: growth in MB}}."""
        self._halt.set()
        self.join()
        now = {pid: node.name for node in self.nodes for pid in node.workers()}
        assert now == self.node_of, f"gunicorn replaced a worker meanwhile: {self.node_of} {now}"
        growth: dict[str, dict[int, float]] = {}
        for pid, node in self.node_of.items():
            peak = self.peak_kb[pid]
            if self.kernel_peak:
                peak = max(peak, status_kb(pid, "VmHWM"))
            growth.setdefault(node, {})[pid] = round((peak - self.start_kb[pid]) / 1024, 1)
        return growth


def client(node: Node, topology: Topology, user: str) -> Client:
    return Client(url=node.url, token=topology.tokens[user], org=ORG, timeout=120)


def upload_bytes_counted(node: Node) -> float:
    """The node's modelvault_upload_bytes_total: its workers' counts summed (/metrics)."""
    response = httpx.get(f"{node.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        if family.name == "modelvault_upload_bytes":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError(f"no modelvault_upload_bytes_total in node {node.name}'s /metrics")


def warm_up(topology: Topology, tmp_path: Path) -> None:
    """What a first request loads once (the S3 client, the upload and download paths) is
    loaded before the watch begins: an upload of a few parts through each node, downloaded
    through the other, and /readyz (which asks the bucket) on several connections at once."""
    small = tmp_path / "warm.bin"
    write_random(small, 9 * MB, seed=1)
    version = client(topology.a, topology, "ada").create_registered_model("warm").create_version()
    for here, there in ((topology.a, topology.b), (topology.b, topology.a)):
        path = f"warm-{here.name}.bin"
        client(here, topology, "ada").get_version("warm", version.number).upload_artifact(
            path, small
        )
        client(there, topology, "ada").get_version("warm", version.number).download_artifact(
            path, tmp_path / "warm"
        )
    with ThreadPoolExecutor(8) as pool:
        urls = [f"{node.url}/readyz" for node in topology.nodes.values() for _ in range(4)]
        assert all(r.status_code == 200 for r in pool.map(lambda u: httpx.get(u, timeout=20), urls))


def test_it_uploads_through_a_and_downloads_through_b_in_bounded_memory(
    topology: Topology, tmp_path: Path
):
    source, received = tmp_path / "weights.bin", tmp_path / "received"
    try:
        started = time.monotonic()
        expected = write_random(source, SIZE, seed=18)
        warm_up(topology, tmp_path)
        counted_before = {
            node.name: upload_bytes_counted(node) for node in (topology.a, topology.b)
        }
        topology.timings.since("artifact: 200 MB written, warm-up", started)

        on_a = client(topology.a, topology, "ada")
        model = on_a.create_registered_model("vision", description="200 MB of weights")
        version = model.create_version(label="1.0.0")
        watch = MemoryWatch([topology.a, topology.b])
        watch.start()
        try:
            moved = time.monotonic()
            stored = version.upload_artifact("weights.bin", source)
            up = time.monotonic() - moved
            on_b = client(topology.b, topology, "bob").get_version("vision", version.number)
            moved = time.monotonic()
            target = on_b.download_artifact("weights.bin", received)
            down = time.monotonic() - moved
        finally:
            growth = watch.stop()

        assert stored["sha256"] == expected and stored["size"] == SIZE
        assert on_b.refresh().data["artifacts"] == [
            {"path": "weights.bin", "size": SIZE, "sha256": expected}
        ]
        assert target.stat().st_size == SIZE
        assert sha256_of(target) == expected
        FIGURES.append(
            f"200 MB: up through A {SIZE / MB / up:.0f} MB/s, down through B "
            f"{SIZE / MB / down:.0f} MB/s; growth of each gunicorn worker's resident set "
            f"(MB, {'kernel peak' if watch.kernel_peak else 'sampled'}): {growth}"
        )
        for node, workers in growth.items():
            assert max(workers.values()) < GROWTH_LIMIT / MB, (
                f"node {node}: a worker's resident set grew by {max(workers.values())} MB "
                f"moving a 200 MB artifact (limit {GROWTH_LIMIT // MB} MB): {growth}"
            )
        # Each node counts what it stored, summed over its workers: A the 200 MB, B none.
        assert upload_bytes_counted(topology.a) - counted_before["a"] == SIZE
        assert upload_bytes_counted(topology.b) == counted_before["b"]
    finally:
        source.unlink(missing_ok=True)
        (received / "weights.bin").unlink(missing_ok=True)


# Webhooks: a receiver in this process, verified as docs/notifications.md says.


def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    """docs/notifications.md's verification, as a receiver writes it."""
    timestamp = headers["X-Modelvault-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False  # a replayed old message
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(f"sha256={expected.hexdigest()}", headers["X-Modelvault-Signature"])


class Receiver(ThreadingHTTPServer):
    def __init__(self):
        self.posts: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def received(self, event: str) -> list[tuple[dict[str, str], bytes]]:
        return [post for post in self.posts if post[0].get("X-Modelvault-Event") == event]


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def webhook(topology: Topology, receiver: Receiver, model: str, events: list[str]) -> str:
    """A webhook of `model` to the receiver, made by ada through node A; its secret."""
    with topology.a.api(topology.tokens["ada"]) as api:
        made = api.post(
            f"/orgs/{ORG}/webhooks", json={"url": receiver.url, "events": events, "model": model}
        )
    assert made.status_code == 201, made.text
    return made.json()["secret"]


def log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def test_it_requests_on_a_approves_on_b_and_the_worker_mails_and_posts(
    topology: Topology, receiver: Receiver
):
    started = time.monotonic()
    ada_a = client(topology.a, topology, "ada")
    version = ada_a.create_registered_model("scoring").create_version(label="2.0.0")
    secret = webhook(topology, receiver, "scoring", ["stage.requested", "stage.applied"])

    # The request through A, with the id a proxy would give it.
    rid = f"topology-{uuid.uuid4().hex}"
    with topology.a.api(topology.tokens["ada"]) as api:
        filed = api.post(
            f"/orgs/{ORG}/models/scoring/versions/{version.number}/stage-requests",
            json={"stage": "staging", "comment": "ready for staging"},
            headers={"X-Request-ID": rid},
        )
    assert filed.status_code == 201, filed.text
    assert filed.headers["X-Request-ID"] == rid
    # bob, a reviewer through the team of default reviewers, approves through B.
    request = client(topology.b, topology, "bob").get_stage_request(filed.json()["id"])
    assert request.approve("looks good").status == "approved"
    assert ada_a.get_version("scoring", version.number).data["stage"] == "staging"

    review = "[Modelvault] Review requested: scoring v1 to staging"
    applied = "[Modelvault] scoring v1 moved to staging"

    def mailed() -> list[tuple[str, str]]:
        return sorted(
            (m["To"], m["Subject"])
            for m in topology.mail(topology.worker_var)
            if m["Subject"] in (review, applied)
        )

    wait_until(
        lambda: len(mailed()) >= 2,
        DELIVERY_TIMEOUT,
        "the worker mailed too little",
        topology.worker,
    )
    wait_until(
        lambda: receiver.received("stage.requested") and receiver.received("stage.applied"),
        DELIVERY_TIMEOUT,
        "the receiver got too few posts",
        topology.worker,
    )
    time.sleep(1)  # a second message of either would arrive by now
    assert mailed() == [("ada@example.com", applied), ("bob@example.com", review)]
    for node in topology.nodes.values():  # the nodes only enqueued: the worker sent them
        assert not [m for m in topology.mail(node.var_dir) if m["Subject"] in (review, applied)]

    posts = receiver.received("stage.requested") + receiver.received("stage.applied")
    assert len(posts) == 2
    for headers, body in posts:
        assert verify(secret, headers, body), f"a bad signature: {headers}"
        assert not verify("another secret", headers, body)
        payload = json.loads(body)
        assert payload["event"] == headers["X-Modelvault-Event"]
        assert (payload["org"], payload["model"], payload["version"]) == (ORG, "scoring", 1)
        assert (
            payload["actor"] == {"stage.requested": "ada", "stage.applied": "bob"}[payload["event"]]
        )

    # One JSON line per request, on the node that served it, with the caller's id; the
    # worker's records of the task that request started carry the same id.
    served = [
        line
        for line in log_lines(topology.a.process.log)
        if line.get("request_id") == rid and "http" in line
    ]
    assert [(line["http"]["method"], line["http"]["status"]) for line in served] == [("POST", 201)]
    assert not [line for line in log_lines(topology.b.process.log) if line.get("request_id") == rid]
    assert [line for line in log_lines(topology.worker.log) if line.get("request_id") == rid]
    topology.timings.since("review: request on A, approval on B, mails and posts", started)


def readiness(node: Node) -> tuple[int, dict]:
    response = httpx.get(f"{node.url}/readyz", timeout=20)
    return response.status_code, response.json()


def test_it_is_unready_while_its_redis_is_away_and_ready_when_it_is_back(
    topology: Topology, receiver: Receiver
):
    client(topology.a, topology, "ada").create_registered_model("outage")
    secret = webhook(topology, receiver, "outage", ["version.created"])
    for node in topology.nodes.values():
        status, body = readiness(node)
        assert (status, body["status"], body["checks"]["broker"]["ok"]) == (200, "ready", True)

    topology.redis.stop()  # the topology's own redis-server: never the machine's
    away = time.monotonic()
    for node in topology.nodes.values():
        status, body = readiness(node)
        assert (status, body["status"]) == (503, "unready"), body
        checks = body["checks"]
        assert checks["broker"]["ok"] is False and checks["broker"]["error"]
        assert checks["database"]["ok"] and checks["storage"]["ok"]
        assert httpx.get(f"{node.url}/healthz", timeout=10).status_code == 200

    topology.redis.start()
    for node in topology.nodes.values():
        wait_until(lambda n=node: readiness(n)[0] == 200, 30, f"node {node.name} stays unready")
    topology.timings["outage: redis stopped until both nodes ready"] = time.monotonic() - away

    # The worker is back too: a version registered now is posted.
    back = time.monotonic()
    on_b = client(topology.b, topology, "ada")
    on_b.get_registered_model("outage").create_version(label="1.0.0")
    wait_until(
        lambda: any(
            json.loads(body)["model"] == "outage"
            for _, body in receiver.received("version.created")
        ),
        DELIVERY_TIMEOUT,
        "no post for a version registered after the outage",
        topology.worker,
    )
    (headers, body) = receiver.received("version.created")[-1]
    assert verify(secret, headers, body)
    topology.timings["outage: first post after it"] = time.monotonic() - back


def test_it_finds_every_artifact_intact_and_every_chain_unbroken(topology: Topology):
    """Last: what the journey stored is what an operator's checks find."""
    artifacts = topology.admin("verify_artifacts")
    summary = re.fullmatch(
        r"(\d+) blobs checked: (\d+) intact, 0 corrupt, 0 missing; 0 orphaned; "
        r"0 unfinished uploads",
        artifacts.stdout.strip(),
    )
    assert summary, artifacts.stdout + artifacts.stderr
    # The 200 MB of vision and the warm-up's file (its two uploads are one blob).
    assert int(summary[1]) == int(summary[2]) == 2
    assert artifacts.stderr == ""

    activity = topology.admin("verify_activity", "--state")
    assert f"{ORG}: " in activity.stdout and "chain intact" in activity.stdout, activity.stdout
    events = int(activity.stdout.split(f"{ORG}: ", 1)[1].split()[0])
    assert events >= 10, activity.stdout
