"""The client side of the HTTP benchmark (bench/http.py): the MLflow baseline workload over
the API with http.client, timed per request."""

import hashlib
import http.client
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import orjson

from bench.http_server import ORG, BenchError, log

MB = 1024 * 1024
CLIENTS = 4
VERSIONS_PER_MODEL = 10
TAG_HITS = 200
PROBE_MODEL = "model-00000"
PROBE_PRODUCTION = (8, 9, 10)  # versions of the probe model put in production
PRODUCTION_EVERY = 10  # and version 10 of every tenth model
WARMUP = 20
ITERATIONS = 300
UPLOAD_RUNS = 3
CHUNK = MB


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def latency(times: list[float]) -> dict[str, Any]:
    cuts = statistics.quantiles(times, n=100) if len(times) > 1 else [times[0]] * 99
    return {
        "requests": len(times),
        "p50_ms": _ms(statistics.median(times)),
        "p95_ms": _ms(cuts[94]),
        "max_ms": _ms(max(times)),
    }


# The client side.


class Session:
    """One keep-alive HTTP/1.1 connection with the standard library's http.client: the
    clients share the machine's two cores with the server, and httpx spends about three times
    the CPU per request (1.4 ms a version against 0.5); streaming 256 MB, it receives in 64
    KiB pieces through h11 and sends through a join of every chunk."""

    def __init__(self, base: str, token: str):
        parts = urlsplit(base)
        self._prefix = parts.path.rstrip("/")
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.close()

    def _target(self, path: str) -> str:
        route, _, query = path.partition("?")
        target = self._prefix + quote(route, safe="/@:")
        if query:
            target += "?" + urlencode(parse_qsl(query, keep_blank_values=True))
        return target

    def request(self, method: str, path: str, json: Any = None) -> "Answer":
        headers = dict(self._headers)
        body = None
        if json is not None:
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        target = self._target(path)
        self._connection.request(method, target, body=body, headers=headers)
        response = self._connection.getresponse()
        return Answer(method, target, response.status, response.headers, response.read())

    def get(self, path: str) -> "Answer":
        return self.request("GET", path)

    def put_stream(
        self, path: str, chunks: Iterator[bytes | memoryview], headers: dict[str, str]
    ) -> "Answer":
        """PUT the chunks as they come, as the body of a declared Content-Length."""
        target = self._target(path)
        connection = self._connection
        connection.putrequest("PUT", target, skip_accept_encoding=True)
        for name, value in {**self._headers, **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for chunk in chunks:
            connection.send(chunk)
        response = connection.getresponse()
        return Answer("PUT", target, response.status, response.headers, response.read())

    def get_stream(self, path: str, consume: Callable[[bytes], None]) -> "Answer":
        """GET, handing a 200's body to `consume` in pieces of up to CHUNK bytes as they
        arrive (the Answer then has no content); any other answer is read whole."""
        target = self._target(path)
        self._connection.request("GET", target, headers=self._headers)
        response = self._connection.getresponse()
        if response.status != 200:
            return Answer("GET", target, response.status, response.headers, response.read())
        while piece := response.read(CHUNK):
            consume(piece)
        return Answer("GET", target, response.status, response.headers, b"")

    def post(self, path: str, json: Any) -> "Answer":
        return self.request("POST", path, json)


@dataclass
class Answer:
    """A Session's response, read whole, shaped as `expect` reads httpx's."""

    method: str
    url: str
    status_code: int
    headers: Any
    content: bytes

    @property
    def request(self) -> "Answer":
        return self

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def read(self) -> bytes:
        return self.content

    def json(self) -> Any:
        return orjson.loads(self.content)


def expect(response, status: int) -> Any:
    if response.status_code != status:
        response.read()  # a streamed response's body is not read yet
        raise BenchError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}, not {status}: {response.text[:500]}"
        )
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else None
    )


def model_name(i: int) -> str:
    return f"model-{i:05d}"


def tag_step(total: int) -> int:
    """Every `step`-th version (by global index) is tagged gold, TAG_HITS of them at most."""
    return max(1, total // TAG_HITS)


def is_gold(i: int, n: int, total: int) -> bool:
    g = i * VERSIONS_PER_MODEL + (n - 1)
    step = tag_step(total)
    return g % step == 0 and g // step < TAG_HITS


def version_payload(i: int, n: int, total: int) -> dict[str, Any]:
    return {
        "framework": "sklearn",
        "description": f"gradient boosting, run {n}",
        "params": {"max_depth": 3 + n, "learning_rate": 0.1, "n_estimators": 100 * n},
        "metrics": {"auc": round(0.8 + n / 100, 4), "f1": round(0.7 + n / 200, 4)},
        "tags": {"team": f"team-{i % 7}", "cohort": "gold" if is_gold(i, n, total) else "silver"},
        "code_version": {"repo": "git@example.com:ml/fraud.git", "commit": f"{i:05x}{n:02x}"},
    }


def load_slice(
    base: str, token: str, models: list[int], total: int, halt: threading.Event
) -> dict[str, list[float]]:
    model_times, version_times = [], []
    for i in models:
        if halt.is_set():  # another client failed, or Ctrl-C
            break
        # One keep-alive session per model and its versions, as a training job registers
        # them: a new connection goes to whichever worker accepts it, so the load spreads
        # over both workers (four connections held for the whole load were dealt 3:1 or
        # 4:0 as often as 2:2, and the busier worker set the pace).
        with Session(base, token) as http:
            begin = time.perf_counter()
            expect(http.post(f"/orgs/{ORG}/models", json={"name": model_name(i)}), 201)
            model_times.append(time.perf_counter() - begin)
            for n in range(1, VERSIONS_PER_MODEL + 1):
                begin = time.perf_counter()
                body = expect(
                    http.post(
                        f"/orgs/{ORG}/models/{model_name(i)}/versions",
                        json=version_payload(i, n, total),
                    ),
                    201,
                )
                version_times.append(time.perf_counter() - begin)
                assert body["number"] == n, body
    return {"models": model_times, "versions": version_times}


def bench_load(base: str, token: str, scale: int, cpu: Callable[[], float]) -> dict[str, Any]:
    """SCALE models x 10 versions, each client registering every CLIENTS-th model."""
    total = scale * VERSIONS_PER_MODEL
    slices = [list(range(k, scale, CLIENTS)) for k in range(CLIENTS)]
    started, cpu_started, server_started = time.perf_counter(), time.process_time(), cpu()
    halt = threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        try:
            parts = list(pool.map(lambda s: load_slice(base, token, s, total, halt), slices))
        except BaseException:
            halt.set()
            raise
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_started
    server_cpu = cpu() - server_started
    versions = [t for part in parts for t in part["versions"]]
    models = [t for part in parts for t in part["models"]]
    return {
        "models": scale,
        "versions": len(versions),
        "clients": CLIENTS,
        "seconds": round(seconds, 1),
        "versions_per_s": round(len(versions) / seconds, 1),
        "version_post": latency(versions),
        "model_post": latency(models),
        # The workers' CPU per version (model POSTs included): what the server spends,
        # whatever else the machine runs. The clients' CPU shares the same 2 cores.
        "server_cpu_ms_per_version": _ms(server_cpu / len(versions)),
        "server_cpu_s": round(server_cpu, 1),
        "client_cpu_s": round(client_cpu, 1),
    }


def bench_production(base: str, tokens: dict[str, str], scale: int) -> dict[str, Any]:
    """Versions into production through the API: the loader requests, the reviewer (an org
    admin, never the requester) approves, one approval applying the change."""
    targets = [(PROBE_MODEL, n) for n in PROBE_PRODUCTION]
    targets += [
        (model_name(i), VERSIONS_PER_MODEL)
        for i in range(PRODUCTION_EVERY, scale, PRODUCTION_EVERY)
    ]
    request_times, approve_times = [], []
    with Session(base, tokens["loader"]) as loader, Session(base, tokens["reviewer"]) as reviewer:
        for name, number in targets:
            begin = time.perf_counter()
            created = expect(
                loader.post(
                    f"/orgs/{ORG}/models/{name}/versions/{number}/stage-requests",
                    json={"stage": "production", "comment": "benchmark promotion"},
                ),
                201,
            )
            request_times.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            done = expect(
                reviewer.post(f"/stage-requests/{created['id']}/approve", json={"comment": "ok"}),
                200,
            )
            approve_times.append(time.perf_counter() - begin)
            if done["status"] != "approved":
                raise BenchError(f"request {created['id']} was not applied: {done}")
    return {
        "versions": len(targets),
        "request_p50_ms": _ms(statistics.median(request_times)),
        "approve_p50_ms": _ms(statistics.median(approve_times)),
    }


def measure(
    http, make_url: Callable[[int], str], check: Callable[[Any], None], cpu: Callable[[], float]
) -> dict[str, Any]:
    """WARMUP then ITERATIONS sequential GETs on one keep-alive connection; the time of each
    is the client's, from sending to the whole body read. The workers' CPU time over the
    measured requests tells server cost from waiting on a busy machine."""
    times = []
    for k in range(WARMUP + ITERATIONS):
        if k == WARMUP:
            cpu_started = cpu()
        url = make_url(k)
        begin = time.perf_counter()
        response = http.get(url)
        elapsed = time.perf_counter() - begin
        check(expect(response, 200))
        if k >= WARMUP:
            times.append(elapsed)
    return {**latency(times), "server_cpu_ms": _ms((cpu() - cpu_started) / ITERATIONS)}


def bench_reads(
    base: str, token: str, scale: int, cpu: Callable[[], float]
) -> dict[str, dict[str, Any]]:
    total = scale * VERSIONS_PER_MODEL
    hits = len([1 for i in range(scale) for n in range(1, 11) if is_gold(i, n, total)])
    rng = random.Random(5)
    picks = [rng.randrange(scale) for _ in range(WARMUP + ITERATIONS)]
    search = f'/orgs/{ORG}/versions?q=tags.cohort == "gold"'
    probe = f"/orgs/{ORG}/models/{PROBE_MODEL}/versions?q=stage == production"

    def items(count: int, *, last: bool) -> Callable[[Any], None]:
        def check(body: Any) -> None:
            if len(body["items"]) != count or (last and body["next"] is not None):
                raise BenchError(f"expected {count} items, got {len(body['items'])}")

        return check

    figures: dict[str, dict[str, Any]] = {}
    with Session(base, token) as http:
        log("  get model ...")
        figures["http_get_model"] = measure(
            http,
            lambda k: f"/orgs/{ORG}/models/{model_name(picks[k])}",
            lambda body: None,
            cpu,
        )
        log("  list 50 models ...")
        figures["http_list_models"] = {
            **measure(
                http,
                lambda k: f"/orgs/{ORG}/models?limit=50",
                items(min(50, scale), last=False),
                cpu,
            ),
            "page": 50,
        }
        log(f"  search versions by tag, {hits} hits in one page ...")
        figures["http_tag_search"] = {
            **measure(http, lambda k: f"{search}&limit={TAG_HITS}", items(hits, last=True), cpu),
            "hits": hits,
            "page": TAG_HITS,
        }
        log("  the same search, first page of 50 ...")
        figures["http_tag_search_page"] = {
            **measure(http, lambda k: f"{search}&limit=50", items(min(50, hits), last=False), cpu),
            "hits": hits,
            "page": 50,
        }
        log("  production versions of one model ...")
        figures["http_production_versions"] = {
            **measure(http, lambda k: probe, items(len(PROBE_PRODUCTION), last=True), cpu),
            "hits": len(PROBE_PRODUCTION),
        }
    return figures


def random_chunks(size: int, seed: int) -> Iterator[memoryview]:
    """`size` incompressible bytes in CHUNK pieces, cut from a 16 MB random block whose first
    bytes depend on `seed` (each run's upload is new content: no blob to share)."""
    rng = random.Random(seed)
    block = rng.randbytes(16 * MB)
    view = memoryview(block)
    for offset in range(0, size, CHUNK):
        start = offset % len(block)
        yield view[start : start + min(CHUNK, size - offset)]


def sha256_of(chunks: Iterator[memoryview]) -> tuple[str, float]:
    hasher = hashlib.sha256()
    begin = time.perf_counter()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest(), time.perf_counter() - begin


def download(http: Session, url: str) -> tuple["Answer", int, str]:
    """GET an artifact: the answer, the bytes received and their SHA-256, hashed as they
    arrive (on a second thread it was no faster: the two cores are busy enough)."""
    hasher = hashlib.sha256()
    received = 0

    def take(piece: bytes) -> None:
        nonlocal received
        received += len(piece)
        hasher.update(piece)

    response = http.get_stream(url, take)
    return response, received, hasher.hexdigest()


def bench_artifacts(
    base: str, token: str, size: int, cpu: Callable[[], float]
) -> dict[str, dict[str, Any]]:
    """UPLOAD_RUNS uploads of `size` new bytes, each to a new version, each downloaded back.
    The server's and this client's CPU seconds show which side (or the machine) limits."""
    size_mb = size / MB
    uploads, downloads, hashing = [], [], []
    cpu_used: dict[str, list[float]] = {
        "up_server": [],
        "up_client": [],
        "down_server": [],
        "down_client": [],
    }
    with Session(base, token) as http:
        expect(http.post(f"/orgs/{ORG}/models", json={"name": "bench-artifacts"}), 201)
        for run in range(UPLOAD_RUNS):
            version = expect(
                http.post(f"/orgs/{ORG}/models/bench-artifacts/versions", json={}), 201
            )
            number = version["number"]
            url = f"/orgs/{ORG}/models/bench-artifacts/versions/{number}/artifacts/weights.bin"
            digest, seconds = sha256_of(random_chunks(size, run))
            hashing.append(seconds)
            begin, server0, client0 = time.perf_counter(), cpu(), time.process_time()
            body = expect(
                http.put_stream(
                    url,
                    random_chunks(size, run),
                    headers={
                        "Content-Length": str(size),
                        "Content-Type": "application/octet-stream",
                        "X-Checksum-Sha256": digest,
                    },
                ),
                201,
            )
            uploads.append(time.perf_counter() - begin)
            cpu_used["up_server"].append(cpu() - server0)
            cpu_used["up_client"].append(time.process_time() - client0)
            if body["sha256"] != digest or body["size"] != size:
                raise BenchError(f"the upload was stored as {body}")
            begin, server0, client0 = time.perf_counter(), cpu(), time.process_time()
            response, received, downloaded = download(http, url)
            expect(response, 200)
            if response.headers.get("Content-Encoding"):
                raise BenchError("the download came content-encoded")
            downloads.append(time.perf_counter() - begin)
            cpu_used["down_server"].append(cpu() - server0)
            cpu_used["down_client"].append(time.process_time() - client0)
            if (
                downloaded != digest
                or received != size
                or response.headers["X-Checksum-Sha256"] != digest
            ):
                raise BenchError("the download does not match the upload")
            log(
                f"  run {run + 1}: upload {size_mb / uploads[-1]:.0f} MB/s, "
                f"download {size_mb / downloads[-1]:.0f} MB/s"
            )
    sha_mb_s = round(size_mb / statistics.median(hashing), 1)

    def figure(times: list[float], server: list[float], client_cpu: list[float]) -> dict:
        return {
            "size_mb": size_mb,
            "runs": UPLOAD_RUNS,
            "mb_s": round(size_mb / statistics.median(times), 1),
            "each_mb_s": [round(size_mb / s, 1) for s in times],
            "server_cpu_s": round(statistics.median(server), 2),
            "client_cpu_s": round(statistics.median(client_cpu), 2),
            "client_sha256_mb_s": sha_mb_s,
        }

    return {
        "http_upload": figure(uploads, cpu_used["up_server"], cpu_used["up_client"]),
        "http_download": figure(downloads, cpu_used["down_server"], cpu_used["down_client"]),
    }
