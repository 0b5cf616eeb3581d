"""`manage.py import_mlflow` against a real MLflow server (the full `mlflow`, in its own venv:
`make mlflow-server-venv`, or MLFLOW_SERVER_VENV), started here on SQLite with its artifacts
in tmp_path, filled with MLflow's own client: 5 models, 30 versions, aliases, tags, stages
and files logged to runs. Marked `mlflow_server`: CI runs it in the SQLite pass only (the
imports under test run on their own databases or the test's, whichever the pass)."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from mlflow import MlflowClient

from approvals.models import StageChangeRequest
from registry.models import (
    ActivityEvent,
    Alias,
    Artifact,
    Blob,
    ModelVersion,
    Organization,
    RegisteredModel,
)
from tests.conftest import missing_service

pytestmark = [pytest.mark.mlflow_server, pytest.mark.xdist_group("mlflow_server")]

ROOT = Path(__file__).resolve().parents[2]
SERVER_VENV = Path(os.environ.get("MLFLOW_SERVER_VENV", ROOT / "var" / "mlflow-server-venv"))
STAGES_DEPRECATED = ".*Model registry stages will be removed"

# name: versions registered (gaps: v2 is deleted again, so its numbers are 1, 3, 4).
MODELS = {"fraud": 10, "churn": 8, "ranker": 5, "vision.det_v2": 4, "gaps": 4}
DELETED = {("gaps", 2)}
STAGES = {
    ("fraud", 8): "Archived",
    ("fraud", 9): "Production",
    ("fraud", 10): "Staging",
    ("churn", 8): "Production",
    ("ranker", 5): "Staging",
    ("vision.det_v2", 1): "Archived",
    ("gaps", 4): "Production",
}
ALIASES = {
    ("fraud", "champion"): 9,
    ("fraud", "challenger"): 10,
    ("churn", "prod"): 8,
    ("ranker", "best"): 3,
    ("gaps", "first"): 1,
    ("gaps", "newest"): 4,
}
BAD_NAME = "has space"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    """A real MLflow server (SQLite backend, artifacts served from tmp_path)."""
    mlflow = SERVER_VENV / "bin" / "mlflow"
    if not mlflow.exists():
        missing_service(
            f"needs the MLflow server venv at {SERVER_VENV} (make mlflow-server-venv, or set "
            "MLFLOW_SERVER_VENV)"
        )
    where = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    command = [
        mlflow,
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--backend-store-uri=sqlite:///{where / 'mlflow.db'}",
        "--serve-artifacts",
        f"--artifacts-destination={where / 'artifacts'}",
    ]
    log = (where / "server.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the MLflow server did not start: {(where / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def logged(mlflow_url, tmp_path_factory) -> dict[tuple[str, int], dict[str, str]]:
    """The MLflow server filled through MLflow's client; the SHA-256 of every file logged,
    by (model, version) and path."""
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    files: dict[tuple[str, int], dict[str, str]] = {}
    experiment = client.create_experiment("import-test")
    folder = tmp_path_factory.mktemp("logged")
    for index, (name, count) in enumerate(MODELS.items()):
        client.create_registered_model(
            name, tags={"team": f"team-{index}", "domain": name}, description=f"The {name} model"
        )
        for number in range(1, count + 1):
            run = client.create_run(experiment)
            local = folder / f"{name}-{number}"
            (local / "data").mkdir(parents=True)
            contents = {
                "MLmodel": f"name: {name}\nversion: {number}\n".encode(),
                "data/weights.bin": os.urandom(1500 + 97 * number),
                "data/params.json": json.dumps({"n": number}).encode(),
            }
            for path, data in contents.items():
                (local / path).write_bytes(data)
            client.log_artifacts(run.info.run_id, str(local), "model")
            # Both kinds of source MLflow gives: a run's path, and the artifacts' own URI.
            source = (
                f"runs:/{run.info.run_id}/model" if number % 2 else f"{run.info.artifact_uri}/model"
            )
            tags = {"trained_on": f"2026-0{1 + number % 9}"}
            if (name, number) == ("fraud", 1):
                tags["modelvault.lock_level"] = "open"  # Modelvault's own: not mapped
            version = client.create_model_version(
                name,
                source,
                run_id=run.info.run_id,
                tags=tags,
                description=f"{name} v{number}" if number % 3 else "",
                await_creation_for=0,
            )
            assert int(version.version) == number
            files[(name, number)] = {path: sha(data) for path, data in contents.items()}
    for name, number in DELETED:
        client.delete_model_version(name, str(number))
        del files[(name, number)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", STAGES_DEPRECATED, FutureWarning)
        for (name, number), stage in STAGES.items():
            client.transition_model_version_stage(name, str(number), stage)
    for (name, alias), number in ALIASES.items():
        client.set_registered_model_alias(name, alias, str(number))
    # A model whose name Modelvault's rules refuse.
    client.create_registered_model(BAD_NAME)
    client.create_model_version(BAD_NAME, "s3://bucket/x")
    assert len(files) == 30
    return files


def snapshot(slug: str) -> dict[str, Any]:
    """What an organization holds, comparable across organizations and runs (also run in
    a subprocess, through `manage.py shell`, for a database that is not the test's)."""
    org = Organization.objects.get(slug=slug)
    models: dict[str, Any] = {}
    for model in RegisteredModel.objects.filter(org=org).order_by("name"):
        versions = {}
        for version in ModelVersion.objects.filter(model=model).order_by("number"):
            versions[str(version.number)] = {
                "stage": version.stage,
                "description": version.description,
                "tags": version.tags,
                "source_run": version.source_run,
                "digest": version.digest,
                "files": dict(
                    Artifact.objects.filter(version=version).values_list("path", "blob_id")
                ),
            }
        models[model.name] = {
            "description": model.description,
            "tags": model.tags,
            "versions": versions,
            "aliases": dict(
                Alias.objects.filter(model=model).values_list("name", "version__number")
            ),
        }
    events = Counter(ActivityEvent.objects.filter(org=org).values_list("verb", flat=True))
    events.pop("org.created", None)
    imported_stages = ActivityEvent.objects.filter(
        org=org, verb="stage.applied", data__imported=True
    ).count()
    return {"models": models, "events": dict(events), "imported_stages": imported_stages}


def counts() -> dict[str, int]:
    return {
        type_.__name__: type_.objects.count()
        for type_ in (RegisteredModel, ModelVersion, Artifact, Blob, Alias, ActivityEvent)
    }


def check_imported(state: dict[str, Any], logged: dict[tuple[str, int], dict[str, str]]):
    """Everything MLflow holds arrived: versions with their numbers, files with the SHA-256
    of what was logged, stages, aliases, tags, run ids and sources."""
    models = state["models"]
    assert sorted(models) == sorted(MODELS)
    for index, name in enumerate(MODELS):
        assert models[name]["description"] == f"The {name} model"
        assert models[name]["tags"] == {"team": f"team-{index}", "domain": name}
        numbers = sorted(number for model, number in logged if model == name)
        assert sorted(int(n) for n in models[name]["versions"]) == numbers
        aliases = {alias: n for (model, alias), n in ALIASES.items() if model == name}
        assert models[name]["aliases"] == aliases
        for number in numbers:
            version = models[name]["versions"][str(number)]
            assert version["files"] == logged[(name, number)]
            stage = STAGES.get((name, number))
            assert version["stage"] == (stage.lower() if stage else "unassigned")
            assert version["description"] == (f"{name} v{number}" if number % 3 else "")
            run_id = version["tags"]["mlflow.run_id"]
            assert version["tags"] == {
                "trained_on": f"2026-0{1 + number % 9}",
                "mlflow.run_id": run_id,
            }
            source = version["source_run"]
            assert source.startswith(f"runs:/{run_id}/" if number % 2 else "mlflow-artifacts:/")
    assert state["events"]["model.imported"] == len(MODELS)
    assert state["events"]["version.created"] == 30
    assert state["events"]["stage.applied"] == state["imported_stages"] == len(STAGES)
    assert state["events"]["alias.set"] == len(ALIASES)


@pytest.mark.django_db
def test_it_imports_models_versions_stages_aliases_and_files(mlflow_url, logged, cast):
    from registry import storage

    out = StringIO()
    call_command("import_mlflow", "--from", mlflow_url, "--org", "acme", "--artifacts", stdout=out)
    output = out.getvalue()
    check_imported(snapshot("acme"), logged)
    # The stored bytes are what was logged: each blob hashed anew from storage.
    for artifact in Artifact.objects.filter(version__model__org=cast.acme):
        digest = hashlib.sha256()
        with storage.artifact_storage().open(storage.blob_key(artifact.blob_id)) as stored:
            for chunk in iter(lambda: stored.read(65536), b""):
                digest.update(chunk)
        assert digest.hexdigest() == artifact.blob_id
    # Stages were imported, not approved: no request, and the event says so.
    assert not StageChangeRequest.objects.exists()
    event = ActivityEvent.objects.get(
        verb="stage.applied", version__model__name="fraud", version__number=9
    )
    assert event.changes == {"stage": ["unassigned", "production"]}
    assert event.data["imported"] is True and event.data["mlflow_stage"] == "Production"
    assert event.actor == cast.admin  # acme's one admin, when --as is not given
    imported = ActivityEvent.objects.get(verb="model.imported", model__name="gaps")
    assert imported.data["versions"] == [1, 3, 4] and imported.data["files"] == 9
    # What could not be mapped is reported, and not imported.
    assert f"'{BAD_NAME}': not a Modelvault model name" in output
    assert "fraud v1: tag 'modelvault.lock_level' not imported" in output
    assert "30 new version(s), 90 new file(s)" in output
    assert not RegisteredModel.objects.filter(name=BAD_NAME).exists()

    before = counts()
    again = StringIO()
    call_command(
        "import_mlflow", "--from", mlflow_url, "--org", "acme", "--artifacts", stdout=again
    )
    assert counts() == before
    assert again.getvalue().count("nothing to do") == len(MODELS)
    assert "0 new version(s), 0 new file(s)" in again.getvalue()


@pytest.mark.django_db
def test_it_refuses_bad_input_and_changes_nothing(mlflow_url, logged, cast):
    before = counts()
    refusals = [
        (["--org", "nope"], "no organization 'nope'"),
        (["--org", "acme", "--as", "carol"], "'carol' is not an active admin of acme"),
        (["--org", "acme", "--model", "nomatch-*"], "matches 'nomatch-*'"),
        (["--org", "acme", "--model", " "], "--model needs a pattern"),
    ]
    for args, message in refusals:
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("import_mlflow", "--from", mlflow_url, *args, stdout=StringIO())
    for url, message in [
        (f"http://127.0.0.1:{free_port()}", "cannot reach the MLflow server"),
        ("ftp://example.invalid/", "is not an http:// or https:// URL"),
    ]:
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("import_mlflow", "--from", url, "--org", "acme", stdout=StringIO())
    assert counts() == before


def test_it_imports_only_the_models_matching_the_pattern(mlflow_url, logged, cast, db):
    out = StringIO()
    call_command(
        "import_mlflow", "--from", mlflow_url, "--org", "acme", "--model", "g*", stdout=out
    )
    assert list(RegisteredModel.objects.filter(org=cast.acme).values_list("name", flat=True)) == [
        "gaps"
    ]
    # Without --artifacts the versions keep their sources and have no files; a later run
    # with --artifacts adds them to the versions already there.
    assert not Artifact.objects.exists()
    call_command(
        "import_mlflow",
        "--from",
        mlflow_url,
        "--org",
        "acme",
        "--model",
        "gaps",
        "--artifacts",
        stdout=out,
    )
    stored = snapshot("acme")["models"]["gaps"]["versions"]
    assert {n: v["files"] for n, v in stored.items()} == {
        str(number): logged[("gaps", number)] for number in (1, 3, 4)
    }


# -- killed half-way, and run again ---------------------------------------------------------


def manage(var: Path, *args: str, **popen: Any):
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "SECRET_KEY": "import-test-" + "k" * 40,
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "",
        "ARTIFACT_STORAGE": "filesystem",
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for name in ("ARTIFACT_ROOT", "ARTIFACT_TMP_DIR", "MLFLOW_TRACKING_TOKEN"):
        env.pop(name, None)
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    if popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, **popen)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def remote_snapshot(var: Path, slug: str) -> dict[str, Any]:
    code = (
        "import json; from tests.mlflow_api.test_import import snapshot, counts; "
        f"print(json.dumps({{'state': snapshot({slug!r}), 'counts': counts()}}))"
    )
    return json.loads(manage(var, "shell", "-v", "0", "-c", code).strip().splitlines()[-1])


def test_it_finishes_a_killed_import_on_a_second_run(mlflow_url, logged, tmp_path):
    """A run killed (SIGKILL) after some versions are in leaves only whole versions; the
    next run finishes with what an uninterrupted import gives (compared with one into
    another organization of the same database), and a third changes nothing."""
    var = tmp_path / "var"
    manage(var, "migrate", "--noinput", "-v", "0")
    manage(var, "create_org", "acme", "--admin", "ada")
    manage(var, "create_org", "globex", "--admin", "gil")
    manage(var, "import_mlflow", "--from", mlflow_url, "--org", "globex", "--artifacts")

    run = manage(
        var,
        "import_mlflow",
        "--from",
        mlflow_url,
        "--org",
        "acme",
        "--artifacts",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seen = []
    try:
        for line in iter(run.stdout.readline, b""):
            seen.append(line.decode())
            if sum(": imported (" in item for item in seen) == 12:
                run.send_signal(signal.SIGKILL)
                break
    finally:
        run.kill()
        run.wait()
        run.stdout.close()
    assert run.returncode == -signal.SIGKILL, "".join(seen)
    assert not any(line.startswith("Done:") for line in seen)

    half = remote_snapshot(var, "acme")["state"]
    present = [
        (name, int(number))
        for name, model in half["models"].items()
        for number in model["versions"]
    ]
    assert 12 <= len(present) < 30
    for name, number in present:  # whole versions only: every file of each is there
        assert half["models"][name]["versions"][str(number)]["files"] == logged[(name, number)]

    output = manage(var, "import_mlflow", "--from", mlflow_url, "--org", "acme", "--artifacts")
    assert "Done: 5 model(s)" in output
    finished = remote_snapshot(var, "acme")
    clean = remote_snapshot(var, "globex")
    assert finished["state"] == clean["state"]
    check_imported(finished["state"], logged)

    manage(var, "import_mlflow", "--from", mlflow_url, "--org", "acme", "--artifacts")
    assert remote_snapshot(var, "acme")["counts"] == finished["counts"]


def test_it_leaves_alone_a_model_of_the_same_name_made_in_modelvault(mlflow_url, logged, cast, db):
    from registry.services.registered_models import model_create
    from registry.services.versions import version_create

    ranker = model_create(actor=cast.admin, org=cast.acme, name="ranker", description="ours")
    version_create(actor=cast.admin, model=ranker, source_run="s3://ours/ranker/1")
    before = counts()
    out = StringIO()
    call_command(
        "import_mlflow",
        "--from",
        mlflow_url,
        "--org",
        "acme",
        "--model",
        "ranker",
        "--as",
        "admin",
        stdout=out,
    )
    assert "ranker: already in acme, and its v1 is not MLflow's v1" in out.getvalue()
    assert counts() == before
    assert ranker.versions.get().source_run == "s3://ours/ranker/1"
