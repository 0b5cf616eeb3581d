"""Races that only real parallel connections can show (SPEC 3.5, 3.7): version numbers,
the activity chain, and blobs shared by concurrent uploads and collections.

Each racer is a thread with its own PostgreSQL connection, released together by a barrier.
"""

import hashlib
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from registry.audit import verify_chain
from registry.demo import ensure_shared_model
from registry.errors import Conflict
from registry.models import (
    ActivityChain,
    ActivityEvent,
    Artifact,
    Blob,
    ModelVersion,
    RegisteredModel,
    VersionSequence,
)
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.blobs import blob_attach, blob_collect
from registry.services.registered_models import model_create, model_update
from registry.services.versions import version_create
from registry.storage import blob_exists, hash_stored_blob, staged_upload, stored_blob_keys

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

User = get_user_model()


class Race:
    """Run `work(i)` for i in 0..n-1 in n threads that start together.

    Each thread opens its own connection before the barrier (so that the race is between the
    services, not between connection handshakes) and closes it at the end. `peak` is the
    largest number of calls that were in flight at the same moment.
    """

    def __init__(self, n: int, work: Callable[[int], Any]) -> None:
        self.n = n
        self.work = work
        self.results: list[Any] = [None] * n
        self.peak = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def _run(self, i: int, barrier: threading.Barrier) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            with self._lock:
                self._in_flight += 1
                self.peak = max(self.peak, self._in_flight)
            try:
                self.results[i] = self.work(i)
            finally:
                with self._lock:
                    self._in_flight -= 1
        except BaseException as exc:
            self.results[i] = exc
        finally:
            connection.close()

    def run(self) -> list[Any]:
        barrier = threading.Barrier(self.n)
        threads = [threading.Thread(target=self._run, args=(i, barrier)) for i in range(self.n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a racer is still running after 120 s"
        errors = [r for r in self.results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)} of {self.n} racers failed: {errors!r}"
        return self.results


def assert_chain_intact(org) -> list[dict]:
    events = list(ActivityEvent.objects.filter(org=org).order_by("seq").values())
    chain = ActivityChain.objects.get(org=org)
    checked, broken = verify_chain(events, head_seq=chain.seq, head_hash=chain.head)
    assert broken is None, str(broken)
    assert checked == chain.seq == len(events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # A fork would be two events linked to the same predecessor.
    assert len({e["prev_hash"] for e in events}) == len(events)
    return events


def hash_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fresh(model: RegisteredModel, user) -> tuple[RegisteredModel, Any]:
    """The model and the user as a request in another process would load them."""
    racer_model = RegisteredModel.objects.select_related("org").get(pk=model.pk)
    return racer_model, User.objects.get(pk=user.pk)


def test_it_numbers_twenty_concurrent_versions_one_to_twenty(model, alice):
    events_before = ActivityEvent.objects.filter(org=model.org).count()

    def create(i: int) -> int:
        racer_model, racer = fresh(model, alice)
        return version_create(actor=racer, model=racer_model, params={"racer": i}).number

    race = Race(20, create)
    numbers = race.run()

    assert sorted(numbers) == list(range(1, 21))
    assert race.peak > 1, "the creations never overlapped: this run proved nothing"
    assert sorted(ModelVersion.objects.filter(model=model).values_list("number", flat=True)) == (
        list(range(1, 21))
    )
    assert VersionSequence.objects.get(model=model).last_number == 20
    events = assert_chain_intact(model.org)
    created = [e for e in events if e["verb"] == "version.created"]
    assert len(events) == events_before + 20
    assert sorted(e["changes"]["number"][1] for e in created) == list(range(1, 21))


class Refused(str):
    """A racer's Conflict, as its result (Race counts exceptions as failures)."""


def conflict_or(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Conflict as conflict:
        return Refused(conflict)


def test_it_gives_a_name_registered_at_once_to_one_model_and_409_to_the_rest(acme, alice):
    from registry.models import Organization

    events_before = ActivityEvent.objects.filter(org=acme).count()

    def create(i: int) -> Any:
        org, racer = Organization.objects.get(pk=acme.pk), User.objects.get(pk=alice.pk)
        return conflict_or(lambda: model_create(actor=racer, org=org, name="raced").pk)

    outcomes = Race(6, create).run()

    conflicts = [o for o in outcomes if isinstance(o, Refused)]
    created = [o for o in outcomes if not isinstance(o, Refused)]
    assert len(created) == 1 and len(conflicts) == 5
    assert all("model raced already exists in acme" in str(c) for c in conflicts)
    # The losers left nothing: one model, one sequence, one branch, one event.
    model = RegisteredModel.objects.get(org=acme, name="raced")
    assert model.pk == created[0]
    assert VersionSequence.objects.filter(model=model).count() == 1
    assert model.branches.count() == 1
    assert ActivityEvent.objects.filter(org=acme).count() == events_before + 1
    assert_chain_intact(acme)


def test_it_gives_409_to_a_rename_that_a_concurrent_registration_beat(model, alice):
    def work(i: int) -> Any:
        racer_model, racer = fresh(model, alice)
        if i == 0:
            return conflict_or(
                lambda: model_create(actor=racer, org=racer_model.org, name="taken").pk
            )
        return conflict_or(lambda: model_update(actor=racer, model=racer_model, name="taken"))

    outcomes = Race(2, work).run()

    assert sum(isinstance(o, Refused) for o in outcomes) == 1
    assert RegisteredModel.objects.filter(org=model.org, name="taken").count() == 1
    assert_chain_intact(model.org)


def test_it_stores_concurrent_uploads_of_the_same_new_content_once(model, alice, settings):
    # (Today these uploads queue: locking a version with select_related also locks its model
    # and org rows. The next test makes the Blob inserts themselves meet.)
    versions = [version_create(actor=alice, model=model) for _ in range(8)]
    content = b"the same weights, uploaded eight times at once\n" * 4096
    sha256 = hash_of(content)

    def upload(i: int) -> Artifact:
        _, racer = fresh(model, alice)
        return artifact_put(
            actor=racer, version=versions[i], path="weights.bin", source=io.BytesIO(content)
        )

    race = Race(len(versions), upload)
    artifacts = race.run()

    assert race.peak > 1, "the uploads never overlapped: this run proved nothing"
    assert {a.blob_id for a in artifacts} == {sha256}
    assert list(Blob.objects.values_list("sha256", "size")) == [(sha256, len(content))]
    assert Artifact.objects.filter(blob_id=sha256).count() == len(versions)
    assert list(stored_blob_keys()) == [sha256]
    assert hash_stored_blob(sha256) == (sha256, len(content))
    assert list(settings.ARTIFACT_TMP_DIR.iterdir()) == []  # no staging file left behind
    assert_chain_intact(model.org)


def test_it_stores_the_same_new_content_once_when_registered_at_once(cast, alice, settings):
    """Versions of different models lock different rows, so here the Blob inserts really
    meet: all but one fail on the primary key and share the winner's row and bytes."""
    models = [ensure_shared_model(cast, f"race-{i}") for i in range(8)]
    content = b"the same weights, registered eight times at once\n" * 4096
    sha256 = hash_of(content)

    def register(i: int) -> ModelVersion:
        racer_model, racer = fresh(models[i], alice)
        return version_create(
            actor=racer, model=racer_model, artifacts={"weights.bin": io.BytesIO(content)}
        )

    race = Race(len(models), register)
    versions = race.run()

    assert race.peak > 1, "the registrations never overlapped: this run proved nothing"
    assert [v.number for v in versions] == [1] * len(models)
    assert list(Blob.objects.values_list("sha256", "size")) == [(sha256, len(content))]
    assert Artifact.objects.filter(blob_id=sha256).count() == len(models)
    assert list(stored_blob_keys()) == [sha256]
    assert hash_stored_blob(sha256) == (sha256, len(content))
    assert list(settings.ARTIFACT_TMP_DIR.iterdir()) == []
    assert_chain_intact(cast.acme)


def orphan_blob(content: bytes) -> str:
    """The state a removed artifact leaves while its collection is queued: a Blob row and
    its bytes, with no artifact pointing at them."""
    with staged_upload(io.BytesIO(content)) as staged, transaction.atomic():
        blob, wrote = blob_attach(staged)
    assert wrote and not blob.artifacts.exists()
    return blob.sha256


ITERATIONS = 15


def test_it_never_loses_bytes_when_collection_races_a_new_upload(model, alice):
    for iteration in range(ITERATIONS):
        content = f"iteration {iteration}\n".encode() * 1000
        sha256 = orphan_blob(content)
        version = version_create(actor=alice, model=model, params={"iteration": iteration})

        def collect_or_upload(
            i: int, sha256=sha256, version=version, content=content, iteration=iteration
        ) -> Any:
            if i == 0:
                # Start the collection later each round, so that the rounds sweep across
                # the upload: collected before it locks the blob, and while it holds it.
                time.sleep(iteration * 0.002)
                return blob_collect(sha256=sha256)
            _, racer = fresh(model, alice)
            return artifact_put(
                actor=racer, version=version, path="model.bin", source=io.BytesIO(content)
            )

        _, artifact = Race(2, collect_or_upload).run()

        assert artifact.blob_id == sha256
        assert Blob.objects.filter(pk=sha256, size=len(content)).exists(), iteration
        assert blob_exists(sha256), f"iteration {iteration}: the upload's bytes were collected"
        assert hash_stored_blob(sha256) == (sha256, len(content))
    assert_chain_intact(model.org)


def test_it_never_loses_bytes_when_a_removal_races_an_upload_of_the_same_content(model, alice):
    """End to end: the removal's collection runs (eagerly) right after its commit, while
    another version uploads the very same bytes."""
    for iteration in range(ITERATIONS):
        content = f"shared {iteration}\n".encode() * 20000
        old = version_create(actor=alice, model=model, artifacts={"model.bin": io.BytesIO(content)})
        new = version_create(actor=alice, model=model)
        sha256 = hash_of(content)

        def remove_or_upload(i: int, old=old, new=new, content=content) -> Any:
            _, racer = fresh(model, alice)
            if i == 0:
                return artifact_delete(actor=racer, version=old, path="model.bin")
            return artifact_put(
                actor=racer, version=new, path="model.bin", source=io.BytesIO(content)
            )

        Race(2, remove_or_upload).run()

        assert not Artifact.objects.filter(version=old).exists()
        assert Artifact.objects.get(version=new).blob_id == sha256
        assert blob_exists(sha256), f"iteration {iteration}: the upload's bytes were collected"
        assert hash_stored_blob(sha256) == (sha256, len(content))
    assert_chain_intact(model.org)
