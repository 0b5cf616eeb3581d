"""S3 figures of `make bench` (issue 18): artifacts through gunicorn configured for S3, against
moto's standalone server on a loopback port, beside boto3 moving the same file directly.

- 1 GB download through the server: the growth of the serving worker's resident set (VmRSS
  of each worker read from /proc every RSS_EVERY s, over its VmRSS just before the request),
  and the time to the first byte of the body;
- upload and download throughput through the server (httpx streams the file up with its
  SHA-256, or reads the body and drops it) against boto3's managed transfer of the same
  file (upload_file, download_fileobj; its default TransferConfig: 8 MiB parts, 10 threads)
  in the same run, and against one plain PutObject / GetObject stream (the server moves each
  artifact as one stream): RUNS rounds, each side in turn, the median of each; the ratio is
  the server's over the faster of boto3's two ways;
- the same download from a second server with ARTIFACT_DOWNLOAD_REDIRECT=true: the API's
  answer is a redirect, which httpx follows (without the token) to the presigned URL.

`run(results)` expects what bench/run.py sets up (django.setup(), migrations, the cast, the
throwaway VAR_DIR); it starts moto_server and gunicorn there and stops them. The server's
artifact is deleted through the API after each round, so that each upload stores the bytes
anew (the blob is collected after commit: no broker, tasks run eagerly).

    python -m bench.s3     the S3 figures alone, in a throwaway VAR_DIR
"""

import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.http_server import (
    GUNICORN,
    WORKERS,
    BenchError,
    free_port,
    log_tail,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    worker_pids,
)

MB = 1024 * 1024
SIZE = 1024 * MB
RUNS = 2
THREADS = 2  # gunicorn.conf.py's default
RSS_EVERY = 0.02
BUCKET = "modelvault-bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
REGION = "us-east-1"
MODEL = "bench-s3"
RATIO_GOAL = 0.8

TITLES = {
    "s3_download_1gb": "S3: 1 GB download through the server",
    "s3_upload": "S3: upload, server / boto3",
    "s3_download": "S3: download, server / boto3",
    "s3_download_redirect": "S3: download, server redirecting / boto3",
}
TARGETS = {
    "s3_download_1gb": "worker RSS growth < 50 MB, first byte < 1 s",
    "s3_upload": f"server >= {RATIO_GOAL:.0%} of the faster boto3 way",
    "s3_download": f"server >= {RATIO_GOAL:.0%} of the faster boto3 way",
    "s3_download_redirect": f"server >= {RATIO_GOAL:.0%} of the faster boto3 way",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(name: str, figure: dict[str, Any]) -> str:
    if figure.get("skipped"):
        return "skipped (--skip-s3)"
    if name == "s3_download_1gb":
        return (
            f"worker RSS +{figure['rss_growth_mb']:.1f} MB, first byte "
            f"{figure['ttfb_s'] * 1000:.0f} ms, {figure['mb_s']:.0f} MB/s"
        )
    return (
        f"server {figure['server_mb_s']:.0f} MB/s, boto3 {figure['boto3_mb_s']:.0f} MB/s "
        f"(one stream {figure['boto3_stream_mb_s']:.0f}), ratio {figure['ratio']:.2f}"
    )


def skip(results: dict) -> None:
    for name in TITLES:
        results[name] = {"skipped": True, "target": TARGETS[name], "met": None}


# The moto server and the gunicorn server.


@contextlib.contextmanager
def moto_server(var_dir: Path) -> Iterator[str]:
    port = free_port()
    command = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, cwd=var_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("moto_server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def boto3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@contextlib.contextmanager
def s3_gunicorn(
    var_dir: Path, endpoint: str, token: str, *, redirect: bool = False
) -> Iterator[tuple[str, int]]:
    """gunicorn (gunicorn.conf.py, WORKERS workers of THREADS threads) on the bench's SQLite
    database, artifacts in BUCKET, downloads redirected or not: (API base URL, master
    pid)."""
    import httpx
    from django.conf import settings

    env = server_env(var_dir, f"sqlite:///{settings.DATABASES['default']['NAME']}", "")
    env.update(
        {
            **CREDENTIALS,
            "ARTIFACT_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_S3_REGION_NAME": REGION,
            "ARTIFACT_DOWNLOAD_REDIRECT": "true" if redirect else "false",
            "REQUEST_LOG_LEVEL": "WARNING",
        }
    )
    (var_dir / "staticfiles").mkdir(exist_ok=True)  # whitenoise's folder: no pages served
    port = free_port()
    log_path = var_dir / f"gunicorn-s3{'-redirect' if redirect else ''}.log"
    server = start_gunicorn(env, port, "gthread", THREADS, log_path)
    base = f"http://127.0.0.1:{port}/api/v1/orgs/acme/models/{MODEL}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise BenchError(f"gunicorn exited:\n{log_tail(log_path)}")
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(base, headers={"Authorization": f"Bearer {token}"}, timeout=5)
                if answer.status_code == 200:
                    break
                raise BenchError(f"the server answered {answer.status_code}: {answer.text[:300]}")
            if time.monotonic() > deadline:
                raise BenchError(f"gunicorn did not answer within 60 s:\n{log_tail(log_path)}")
            time.sleep(0.2)
        yield base, server.pid
    except BaseException:
        log(f"gunicorn's log:\n{log_tail(log_path)}")
        raise
    finally:
        stop_gunicorn(server)


# Resident sets.


def vm_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssGrowth(threading.Thread):
    """Each worker's largest VmRSS while it runs, over its VmRSS when it started."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.pids = worker_pids(master)
        self.before = {pid: vm_rss_kb(pid) or 0 for pid in self.pids}
        self.peak = dict(self.before)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], vm_rss_kb(pid) or 0)
            self._halt.wait(RSS_EVERY)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        growth = {pid: self.peak[pid] - self.before[pid] for pid in self.pids}
        pid = max(growth, key=growth.get)
        return {
            "rss_growth_mb": round(growth[pid] / 1024, 1),
            "rss_before_mb": round(self.before[pid] / 1024, 1),
            "rss_peak_mb": round(self.peak[pid] / 1024, 1),
            "workers": len(self.pids),
        }


# Transfers: each returns seconds (and the download its time to first byte).


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(MB):
            yield block


def server_upload(http, base: str, number: int, path: Path, sha256: str) -> float:
    started = time.perf_counter()
    answer = http.put(
        f"{base}/versions/{number}/artifacts/weights.bin",
        content=file_chunks(path),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(SIZE),
            "X-Checksum-Sha256": sha256,
        },
    )
    seconds = time.perf_counter() - started
    if answer.status_code != 201 or answer.json()["sha256"] != sha256:
        raise BenchError(f"the upload answered {answer.status_code}: {answer.text[:300]}")
    return seconds


def server_download(http, base: str, number: int, sha256: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    received = 0
    url = f"{base}/versions/{number}/artifacts/weights.bin"
    # httpx drops the token when it follows a redirect to another origin (the bucket).
    with http.stream("GET", url, follow_redirects=True) as answer:
        served = (answer.history or [answer])[0]  # the server's answer: the checksum is its
        if answer.status_code != 200 or served.headers.get("X-Checksum-Sha256") != sha256:
            raise BenchError(f"the download answered {answer.status_code}")
        for block in answer.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            received += len(block)
    seconds = time.perf_counter() - started
    if received != SIZE:
        raise BenchError(f"the download gave {received} bytes of {SIZE}")
    return seconds, first


class Sink:
    """A file-like object that keeps nothing: the client side of a download drops the bytes
    on both sides."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def boto3_upload(s3, path: Path) -> float:
    started = time.perf_counter()
    s3.upload_file(str(path), BUCKET, "direct/weights.bin")
    return time.perf_counter() - started


def boto3_download(s3) -> float:
    sink = Sink()
    started = time.perf_counter()
    s3.download_fileobj(BUCKET, "direct/weights.bin", sink)
    seconds = time.perf_counter() - started
    if sink.size != SIZE:
        raise BenchError(f"boto3 downloaded {sink.size} bytes of {SIZE}")
    return seconds


def boto3_stream_upload(s3, path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as body:
        s3.put_object(Bucket=BUCKET, Key="direct/stream.bin", Body=body)
    return time.perf_counter() - started


def boto3_stream_download(s3) -> float:
    started = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key="direct/stream.bin")["Body"]
    received = sum(len(block) for block in body.iter_chunks(MB))
    seconds = time.perf_counter() - started
    if received != SIZE:
        raise BenchError(f"GetObject gave {received} bytes of {SIZE}")
    return seconds


def rate(seconds: list[float]) -> float:
    return round(SIZE / MB / statistics.median(seconds), 1)


def throughput(server: list[float], direct: list[float], stream: list[float]) -> dict[str, Any]:
    figure = {
        "size_mb": SIZE // MB,
        "runs": len(server),
        "server_mb_s": rate(server),
        "boto3_mb_s": rate(direct),
        "boto3_stream_mb_s": rate(stream),
        "server_seconds": [round(s, 2) for s in server],
        "boto3_seconds": [round(s, 2) for s in direct],
        "boto3_stream_seconds": [round(s, 2) for s in stream],
    }
    # Against the faster of boto3's two ways: the stricter comparison.
    best = max(figure["boto3_mb_s"], figure["boto3_stream_mb_s"])
    figure["ratio"] = round(figure["server_mb_s"] / best, 3)
    return figure


def measure(var_dir: Path, cast) -> dict[str, dict[str, Any]]:
    import httpx

    from bench.run import sha256_file, write_random_file
    from registry.services.registered_models import model_create
    from registry.services.tokens import token_create
    from registry.services.versions import version_create

    token = token_create(actor=cast.alice, user=cast.alice, name="bench-s3")[1]
    model = model_create(actor=cast.alice, org=cast.acme, name=MODEL)
    number = version_create(actor=cast.alice, model=model).number
    path = var_dir / "s3-1gb.bin"
    write_random_file(path, SIZE, seed=18)
    sha256 = sha256_file(path)
    times: dict[str, list[float]] = {
        k: [] for k in ("up", "down", "redirect", "b_up", "b_down", "s_up", "s_down")
    }
    first: dict[str, Any] = {}
    with moto_server(var_dir) as endpoint:
        s3 = boto3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        with (
            s3_gunicorn(var_dir, endpoint, token) as (base, master),
            s3_gunicorn(var_dir, endpoint, token, redirect=True) as (redirecting, _),
            httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=600) as http,
        ):
            for run in range(1, RUNS + 1):
                times["up"].append(server_upload(http, base, number, path, sha256))
                sampler = RssGrowth(master)
                sampler.start()
                seconds, ttfb = server_download(http, base, number, sha256)
                memory = sampler.stop()
                times["down"].append(seconds)
                times["redirect"].append(server_download(http, redirecting, number, sha256)[0])
                if run == 1:
                    first = {**memory, "ttfb_s": round(ttfb, 3), "mb_s": rate([seconds])}
                else:
                    first["rss_growth_mb_later_rounds"] = [
                        *first.get("rss_growth_mb_later_rounds", []),
                        memory["rss_growth_mb"],
                    ]
                answer = http.delete(f"{base}/versions/{number}/artifacts/weights.bin")
                if answer.status_code != 204:
                    raise BenchError(f"the delete answered {answer.status_code}")
                times["b_up"].append(boto3_upload(s3, path))
                times["b_down"].append(boto3_download(s3))
                times["s_up"].append(boto3_stream_upload(s3, path))
                times["s_down"].append(boto3_stream_download(s3))
                took = ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
                log(f"  round {run}/{RUNS}: {took}")
                for key in ("direct/weights.bin", "direct/stream.bin"):
                    s3.delete_object(Bucket=BUCKET, Key=key)
            left = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    path.unlink()
    download_1gb = {"size_mb": SIZE // MB, "threads": THREADS, **first, "objects_left": left}
    download_1gb["met"] = download_1gb["rss_growth_mb"] < 50 and download_1gb["ttfb_s"] < 1
    upload = throughput(times["up"], times["b_up"], times["s_up"])
    download = throughput(times["down"], times["b_down"], times["s_down"])
    redirected = throughput(times["redirect"], times["b_down"], times["s_down"])
    for figure in (upload, download, redirected):
        figure["met"] = figure["ratio"] >= RATIO_GOAL
    return {
        "s3_download_1gb": download_1gb,
        "s3_upload": upload,
        "s3_download": download,
        "s3_download_redirect": redirected,
    }


def run(results: dict) -> None:
    """Add the S3 figures to `results` (name -> figure, with target and met)."""
    from django.conf import settings

    from registry.demo import ensure_cast

    if not GUNICORN.exists():
        raise BenchError(f"{GUNICORN} is missing: the S3 figures need gunicorn")
    log(f"S3 through gunicorn ({WORKERS} workers) and moto, {RUNS} rounds of 1 GB ...")
    cast = ensure_cast(passwords=False)
    var_dir = Path(settings.VAR_DIR)
    for name, figure in measure(var_dir, cast).items():
        results[name] = {**figure, "target": TARGETS[name]}
        log(f"  {TITLES[name]}: {describe(name, results[name])}")


def main() -> int:
    import django

    from bench.run import configure, table

    var_dir = Path(tempfile.mkdtemp(prefix="modelvault-bench-s3-"))
    try:
        configure(var_dir)
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        results: dict[str, dict[str, Any]] = {}
        run(results)
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
