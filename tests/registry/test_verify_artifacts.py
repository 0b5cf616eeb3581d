"""manage.py verify_artifacts: re-hash stored blobs; report corrupt, missing and orphaned bytes."""

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from registry.models import Blob
from registry.services.artifacts import artifact_put
from registry.services.versions import version_create
from registry.storage import blob_key
from registry.tasks import sweep_unfinished_uploads
from tests.conftest import triggers_lifted

MODEL_BYTES = b"gradient-boosted trees, serialised"
README_BYTES = b"How to use this model.\n"


def stored_path(sha256: str) -> Path:
    return Path(settings.ARTIFACT_ROOT) / blob_key(sha256)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_artifacts", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("verify_artifacts", *args, stdout=out, stderr=err)
    return str(failure.value), err.getvalue()


@pytest.fixture
def stored(model, alice):
    """Two versions of acme/fraud: model.bin differs, README.txt is one shared blob."""
    version_create(
        actor=alice,
        model=model,
        artifacts={"model.bin": io.BytesIO(MODEL_BYTES), "README.txt": io.BytesIO(README_BYTES)},
    )
    second = version_create(
        actor=alice, model=model, artifacts={"README.txt": io.BytesIO(README_BYTES)}
    )
    artifact_put(actor=alice, version=second, path="model.bin", source=io.BytesIO(b"v2 trees"))
    assert Blob.objects.count() == 3
    for blob in Blob.objects.all():
        assert stored_path(blob.sha256).is_file()
    return model


def write_orphan(data: bytes) -> str:
    digest = sha(data)
    path = stored_path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


@pytest.mark.django_db
def test_it_passes_a_clean_store(stored):
    out, err = run()

    assert "3 blobs checked: 3 intact, 0 corrupt, 0 missing; 0 orphaned" in out
    assert err == ""


@pytest.mark.django_db
def test_it_names_a_corrupt_blob_and_the_artifact_that_uses_it(stored):
    path = stored_path(sha(MODEL_BYTES))
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))

    summary, err = run_failing()

    assert f"corrupt blob sha256:{sha(MODEL_BYTES)}" in err
    assert f"the stored bytes hash to {sha(bytes(data))}" in err
    assert "used by acme/fraud v1 model.bin" in err
    assert "1 corrupt, 0 missing" in summary


@pytest.mark.django_db
def test_it_names_every_artifact_of_a_shared_blob(stored):
    path = stored_path(sha(README_BYTES))
    path.write_bytes(README_BYTES + b"appended")

    _, err = run_failing()

    assert f"corrupt blob sha256:{sha(README_BYTES)}" in err
    assert "used by acme/fraud v1 README.txt, acme/fraud v2 README.txt" in err


@pytest.mark.django_db
def test_it_reports_a_size_that_differs_from_the_record(stored):
    # The database refuses to change a blob's size; its owner can lift that refusal.
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Blob._meta.db_table} SET size = %s WHERE sha256 = %s",
            [len(MODEL_BYTES) + 1, sha(MODEL_BYTES)],
        )

    _, err = run_failing()

    assert f"corrupt blob sha256:{sha(MODEL_BYTES)}" in err
    assert f"{len(MODEL_BYTES)} bytes stored, {len(MODEL_BYTES) + 1} recorded" in err


@pytest.mark.django_db
def test_it_reports_a_missing_blob(stored):
    stored_path(sha(b"v2 trees")).unlink()

    summary, err = run_failing()

    assert f"missing blob sha256:{sha(b'v2 trees')}" in err
    assert "used by acme/fraud v2 model.bin" in err
    assert "0 corrupt, 1 missing" in summary


@pytest.mark.django_db
def test_it_warns_about_orphaned_bytes_without_failing(stored):
    orphan = write_orphan(b"bytes nobody registered")

    out, err = run()

    assert f"orphaned bytes sha256:{orphan}" in err
    assert "3 intact, 0 corrupt, 0 missing; 1 orphaned" in out
    assert stored_path(orphan).exists()


@pytest.mark.django_db
def test_it_deletes_old_orphans_when_asked(stored):
    orphan = write_orphan(b"bytes nobody registered")
    an_hour_ago = time.time() - 3700
    os.utime(stored_path(orphan), (an_hour_ago, an_hour_ago))

    out, err = run("--delete-orphans")

    assert f"orphaned bytes sha256:{orphan}" in err and "(deleted)" in err
    assert "1 orphaned (1 deleted)" in out
    assert not stored_path(orphan).exists()
    for blob in Blob.objects.all():
        assert stored_path(blob.sha256).is_file()


@pytest.mark.django_db
def test_it_keeps_recent_orphans_that_may_be_uploads_in_flight(stored):
    orphan = write_orphan(b"an upload about to commit")

    out, err = run("--delete-orphans")

    assert "(kept: written less than 3600 s ago" in err
    assert "1 orphaned (0 deleted)" in out
    assert stored_path(orphan).exists()

    out, _ = run("--delete-orphans", "--orphan-age", "0")

    assert "1 orphaned (1 deleted)" in out
    assert not stored_path(orphan).exists()


@pytest.mark.django_db
def test_the_sweep_removes_only_staging_files_left_more_than_a_day_ago():
    staging = Path(settings.ARTIFACT_TMP_DIR)
    staging.mkdir(parents=True)
    left, arriving = staging / "upload-left", staging / "upload-arriving"
    left.write_bytes(b"cut off by a killed server")
    arriving.write_bytes(b"still arriving")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(left, (two_days_ago, two_days_ago))

    assert sweep_unfinished_uploads.delay().get() == 1

    assert (left.exists(), arriving.exists()) == (False, True)
    _, err = run()
    assert f"unfinished upload {arriving}" in err


def test_beat_runs_the_sweep_hourly():
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["uploads-sweep"]
    assert entry == {"task": "registry.tasks.sweep_unfinished_uploads", "schedule": 3600.0}
    assert entry["task"] in app.tasks
