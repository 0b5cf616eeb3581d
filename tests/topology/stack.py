"""The production topology on one machine (docs/deploy.md, "A tested topology"): a throwaway
database on the PostgreSQL that runs here, a redis-server of its own (broker and cache) on a
free port, moto's S3 server with a bucket, two gunicorn nodes and one Celery worker with
beat, each with the production settings and a VAR_DIR of its own, as separate hosts have.

The org `acme` is made as an operator makes it: `modelvault-admin migrate`, `create_org`,
`create_api_token`; its second member, team and default reviewers through the REST API."""

import email
import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import httpx

from bench.http_server import worker_pids
from tests.topology.processes import (
    REPO,
    Process,
    Processes,
    TopologyError,
    free_port,
    listens,
    wait_until,
)

BIN = Path(sys.executable).parent
ADMIN = BIN / "modelvault-admin"
# The systemd units, whose commands the topology runs (with this venv for theirs).
DEPLOY = REPO / "deploy"
UNIT_BIN = "/srv/modelvault/.venv/bin/"
ORG = "acme"
# Per gunicorn node: as many workers as the node would have cores (gunicorn_conf's default).
WORKERS = 2
BUCKET = "modelvault-topology"
# What Django's file backend puts between two messages of one connection.
MAIL_SEPARATOR = "\n" + "-" * 79 + "\n"


class Timings(dict):
    """Seconds per phase, in the order they ran: printed at the end of the run."""

    def since(self, name: str, start: float) -> None:
        self[name] = self.get(name, 0.0) + time.monotonic() - start


TIMINGS = Timings()
# Figures the tests measured (transfer rates, memory growth), printed with the timings.
FIGURES: list[str] = []


@dataclass
class Node:
    """A web node: gunicorn (config/gunicorn_conf.py, gthread) on its own port."""

    name: str
    url: str
    process: Process
    var_dir: Path

    def workers(self) -> list[int]:
        return worker_pids(self.process.popen.pid)

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )


@dataclass
class Redis:
    """The topology's own redis-server: stopping it never touches the machine's shared one."""

    port: int
    logs: Path
    processes: Processes
    process: Process | None = None
    # Where it stands in the order of stopping: a restarted Redis still stops last.
    slot: int = -1

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = ["redis-server", "--port", self.port, "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = self.processes.spawn(
            "redis", command, os.environ.copy(), self.logs, REPO, at=self.slot
        )
        wait_until(lambda: self.answers(), 20, "redis-server did not answer", self.process)

    def stop(self) -> None:
        assert self.process is not None
        self.process.stop()
        self.slot = self.processes.started.index(self.process)
        self.processes.started.remove(self.process)
        self.process = None

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


@dataclass
class Topology:
    root: Path
    env: dict[str, str]
    redis: Redis
    s3_url: str
    nodes: dict[str, Node] = field(default_factory=dict)
    worker: Process | None = None
    worker_var: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    @property
    def a(self) -> Node:
        return self.nodes["a"]

    @property
    def b(self) -> Node:
        return self.nodes["b"]

    def host_env(self, var_dir: Path, **extra: str) -> dict[str, str]:
        var_dir.mkdir(parents=True, exist_ok=True)
        return {**self.env, "VAR_DIR": str(var_dir), **extra}

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`modelvault-admin ARGS` as an operator runs it on a host of its own."""
        return self.run([str(ADMIN), *args], check=check)

    def run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            command,
            cwd=self.root,
            env=self.host_env(self.root / "admin-host"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode:
            raise TopologyError(f"{shlex.join(command)}:\n{done.stdout}{done.stderr}")
        return done

    def mail(self, var_dir: Path) -> list[Message]:
        """The messages Django's file backend wrote under VAR_DIR/mail of one host."""
        messages = []
        for path in sorted((var_dir / "mail").glob("*.log")):
            for chunk in path.read_text().split(MAIL_SEPARATOR):
                if chunk.strip():
                    messages.append(email.message_from_string(chunk))
        return messages


def unit_command(unit: str, key: str = "ExecStart") -> list[str]:
    """The command of `key` in deploy/UNIT.service, run from this venv's bin/."""
    for line in (DEPLOY / f"{unit}.service").read_text().splitlines():
        if line.startswith(f"{key}="):
            command = shlex.split(line.removeprefix(f"{key}="))
            assert command[0].startswith(UNIT_BIN), f"{unit}: {line}"
            return [str(BIN / command[0].removeprefix(UNIT_BIN)), *command[1:]]
    raise LookupError(f"deploy/{unit}.service has no {key}")


def production_env(db_url: str, redis_url: str, s3_url: str, site_url: str) -> dict[str, str]:
    """DEBUG off and every production part (docs/operations.md); plain HTTP on loopback, as
    behind a proxy that ends TLS. Nothing of the caller's environment but PATH, HOME, LANG."""
    kept = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {
        **kept,
        # The checkout's code, whatever the venv's editable install maps.
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": site_url,
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": f"{redis_url}/0",
        "CACHE_URL": f"{redis_url}/1",
        "ARTIFACT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_url,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "topology",
        "AWS_SECRET_ACCESS_KEY": "topology",
        "AWS_EC2_METADATA_DISABLED": "true",
        # E-mail: no EMAIL_HOST, so Django's file backend under each host's VAR_DIR/mail:
        # a message found under the worker's was sent by the worker.
        "DEFAULT_FROM_EMAIL": "modelvault@topology.example",
        # The webhook receiver of the test listens on loopback.
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "LOG_FORMAT": "json",
    }


def start_s3(processes: Processes, logs: Path) -> str:
    import boto3

    port = free_port()
    server = processes.spawn(
        "s3", [BIN / "moto_server", "-H", "127.0.0.1", "-p", port], os.environ.copy(), logs, REPO
    )
    wait_until(lambda: listens(port), 30, "moto_server did not listen", server)
    url = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="topology",
        aws_secret_access_key="topology",
    ).create_bucket(Bucket=BUCKET)
    return url


def start_node(topology: Topology, processes: Processes, name: str, port: int) -> Node:
    """As deploy/modelvault-web.service runs it: collectstatic, then gunicorn with the
    package's configuration."""
    var_dir = topology.root / f"node-{name}"
    env = topology.host_env(var_dir, HOST="127.0.0.1", PORT=str(port), WORKERS=str(WORKERS))
    before = unit_command("modelvault-web", "ExecStartPre")
    subprocess.run(before, env=env, cwd=var_dir, check=True, timeout=120)
    command = unit_command("modelvault-web")
    process = processes.spawn(f"node-{name}", command, env, topology.root / "logs", var_dir)
    return Node(name, f"http://127.0.0.1:{port}", process, var_dir)


def wait_ready(node: Node) -> None:
    def ready() -> bool:
        try:
            response = httpx.get(f"{node.url}/readyz", timeout=10)
        except httpx.TransportError:
            return False
        if response.status_code == 503:
            raise TopologyError(f"node {node.name} is unready: {response.text}")
        return response.status_code == 200 and len(node.workers()) == WORKERS

    wait_until(ready, 60, f"node {node.name} did not answer /readyz", node.process)


def start_worker(topology: Topology, processes: Processes) -> None:
    """deploy/modelvault-worker.service's worker with beat embedded (-B), as `make worker`
    runs it on a single host."""
    var_dir = topology.root / "worker-host"
    env = topology.host_env(var_dir)
    command = [*unit_command("modelvault-worker"), "-B"]
    worker = processes.spawn("worker", command, env, topology.root / "logs", var_dir)
    topology.worker, topology.worker_var = worker, var_dir
    wait_until(lambda: " ready." in worker.log.read_text(errors="replace"), 60, "no worker", worker)


def token(topology: Topology, username: str) -> str:
    done = topology.admin("create_api_token", username, "--org", ORG, "--name", "topology")
    return done.stdout.strip()


def make_org(topology: Topology) -> None:
    """The database and ada, admin of acme, by the commands an operator runs on one host
    before the web nodes start (deploy/modelvault-migrate.service, then create_org)."""
    topology.run(unit_command("modelvault-migrate"))
    topology.admin("create_org", ORG, "--admin", "ada", "--email", "ada@example.com")
    topology.tokens["ada"] = token(topology, "ada")


def add_reviewer(topology: Topology) -> None:
    """bob, by ada through node A's API: invited as a member, put in the team of default
    reviewers, so that he may approve on every model made after."""
    with topology.a.api(topology.tokens["ada"]) as api:
        invited = api.post(
            f"/orgs/{ORG}/invitations", json={"username": "bob", "email": "bob@example.com"}
        )
        assert invited.status_code == 201, invited.text
        team = api.post(f"/orgs/{ORG}/teams", json={"name": "reviewers"})
        assert team.status_code == 201, team.text
        team_members = f"/orgs/{ORG}/teams/{team.json()['id']}/members"
        members = api.put(team_members, json={"members": ["bob"]})
        assert members.status_code == 200, members.text
        org = api.patch(f"/orgs/{ORG}", json={"default_reviewers": "reviewers"})
        assert org.status_code == 200, org.text
    topology.tokens["bob"] = token(topology, "bob")
