"""Artifacts (SPEC 3.5): streamed while hashed, checked against the client's SHA-256, stored
once per content, and nothing left behind by a refused or interrupted upload."""

import hashlib
import io
from pathlib import Path

import pytest
from django.conf import settings

from registry.errors import Invalid, NotFound, TooLarge
from registry.models import ActivityEvent, Artifact, Blob, ModelVersion
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.versions import Upload, version_create, version_delete
from registry.storage import blob_key

pytestmark = pytest.mark.django_db


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(folder) -> dict[str, bytes]:
    root = Path(folder)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def stored() -> dict[str, bytes]:
    return files_under(settings.ARTIFACT_ROOT)


def staging() -> dict[str, bytes]:
    return files_under(settings.ARTIFACT_TMP_DIR)


@pytest.fixture
def version(model, alice):
    return version_create(actor=alice, model=model)


def assert_nothing_stored(version, *, events: int) -> None:
    assert not Artifact.objects.exists()
    assert not Blob.objects.exists()
    assert stored() == {}
    assert staging() == {}
    assert ActivityEvent.objects.count() == events
    assert ModelVersion.objects.get(pk=version.pk).digest == version.digest


def interrupted(chunks: int):
    """A body that breaks off after some chunks, as a dropped connection does."""
    for _ in range(chunks):
        yield b"x" * 1000
    raise ConnectionResetError("client went away")


# --- refused and interrupted uploads --------------------------------------------------------


def test_it_stores_an_upload_under_its_content_address(version, alice):
    body = b"model weights" * 1000
    artifact = artifact_put(
        actor=alice, version=version, path="models/model.bin", source=io.BytesIO(body)
    )
    assert (artifact.sha256, artifact.size) == (sha(body), len(body))
    # The key is made from the content, never from the user's path.
    assert stored() == {blob_key(sha(body)): body}
    assert staging() == {}


@pytest.mark.parametrize(
    "expected", [lambda body: sha(body).upper(), lambda body: f"sha256:{sha(body)}"]
)
def test_it_accepts_a_matching_checksum_in_either_spelling(version, alice, expected):
    body = b"abc"
    artifact_put(
        actor=alice, version=version, path="m", source=[body], expected_sha256=expected(body)
    )
    assert Artifact.objects.get().blob_id == sha(body)


def test_it_refuses_a_checksum_mismatch_and_stores_nothing(version, alice):
    events = ActivityEvent.objects.count()
    with pytest.raises(Invalid, match="checksum mismatch: .*nothing was stored") as refused:
        artifact_put(
            actor=alice,
            version=version,
            path="model.bin",
            source=[b"abc", b"def"],
            expected_sha256=sha(b"something else"),
        )
    assert refused.value.details == {"expected": sha(b"something else"), "actual": sha(b"abcdef")}
    assert_nothing_stored(version, events=events)


@pytest.mark.parametrize(
    ("declared", "how"), [(7, "it was cut off"), (5, "it ran over")], ids=["short", "long"]
)
def test_it_refuses_a_body_of_another_size_than_declared_and_stores_nothing(
    version, alice, declared, how
):
    events = ActivityEvent.objects.count()
    with pytest.raises(Invalid, match=f"6 bytes where {declared} were declared: {how}"):
        artifact_put(
            actor=alice,
            version=version,
            path="model.bin",
            source=[b"abc", b"def"],
            expected_size=declared,
        )
    assert_nothing_stored(version, events=events)
    exact = artifact_put(
        actor=alice, version=version, path="model.bin", source=[b"abc", b"def"], expected_size=6
    )
    assert exact.blob.size == 6


def test_it_refuses_a_malformed_expected_checksum(version, alice):
    events = ActivityEvent.objects.count()
    with pytest.raises(Invalid, match="expected SHA-256 must be 64 hexadecimal digits"):
        artifact_put(actor=alice, version=version, path="m", source=[b"a"], expected_sha256="md5")
    assert_nothing_stored(version, events=events)


def test_it_refuses_a_mismatch_when_registering_a_version_and_creates_nothing(model, alice):
    events = ActivityEvent.objects.count()
    with pytest.raises(Invalid, match="checksum mismatch"):
        version_create(
            actor=alice,
            model=model,
            artifacts={
                "good.bin": Upload([b"good"], sha256=sha(b"good")),
                "bad.bin": Upload([b"bad"], sha256=sha(b"other")),
            },
        )
    assert not ModelVersion.objects.exists()
    assert (Artifact.objects.count(), Blob.objects.count()) == (0, 0)
    assert (stored(), staging()) == ({}, {})
    assert ActivityEvent.objects.count() == events
    # No number was taken either.
    assert version_create(actor=alice, model=model).number == 1


def test_it_leaves_nothing_when_the_stream_breaks_off(version, alice):
    events = ActivityEvent.objects.count()
    with pytest.raises(ConnectionResetError):
        artifact_put(actor=alice, version=version, path="model.bin", source=interrupted(3))
    assert_nothing_stored(version, events=events)


def test_it_leaves_nothing_when_a_stream_breaks_off_while_registering(model, alice):
    with pytest.raises(ConnectionResetError):
        version_create(
            actor=alice, model=model, artifacts={"a.bin": [b"a"], "b.bin": interrupted(2)}
        )
    assert not ModelVersion.objects.exists()
    assert (Artifact.objects.count(), Blob.objects.count()) == (0, 0)
    assert (stored(), staging()) == ({}, {})


def test_it_removes_placed_bytes_when_the_transaction_fails_after_placing_them(
    version, alice, monkeypatch
):
    # Fault injection at the last step of the transaction, after the bytes are in place.
    def crash(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("registry.services.artifacts.event_record", crash)
    events = ActivityEvent.objects.count()
    with pytest.raises(RuntimeError, match="database went away"):
        artifact_put(actor=alice, version=version, path="model.bin", source=[b"weights"])
    assert_nothing_stored(version, events=events)


def test_it_keeps_shared_bytes_when_a_failing_upload_did_not_write_them(version, model, alice):
    artifact_put(actor=alice, version=version, path="a.bin", source=[b"shared"])
    other = version_create(actor=alice, model=model)
    before = stored()
    with pytest.raises(Invalid, match="checksum mismatch"):
        artifact_put(
            actor=alice, version=other, path="a.bin", source=[b"shared"], expected_sha256="0" * 64
        )
    assert stored() == before
    assert Blob.objects.count() == 1


def test_it_refuses_an_upload_over_the_size_limit_and_stores_nothing(version, alice):
    events = ActivityEvent.objects.count()
    with pytest.raises(TooLarge, match="larger than the limit of 10 bytes"):
        artifact_put(
            actor=alice, version=version, path="m", source=[b"123456", b"78901"], max_size=10
        )
    assert_nothing_stored(version, events=events)
    artifact_put(actor=alice, version=version, path="m", source=[b"1234567890"], max_size=10)
    assert Artifact.objects.get().size == 10


def test_it_applies_the_configured_size_limit(version, alice, settings):
    settings.ARTIFACT_MAX_SIZE = 4
    events = ActivityEvent.objects.count()
    with pytest.raises(TooLarge, match="larger than the limit of 4 bytes"):
        artifact_put(actor=alice, version=version, path="m", source=io.BytesIO(b"12345"))
    assert_nothing_stored(version, events=events)


UNSAFE_PATHS = [
    ("../x", "'..' segments"),
    ("a/../b", "'..' segments"),
    ("..", "'..' segments"),
    ("/abs", "must be relative, not absolute"),
    ("a\\b", "no backslashes"),
    ("a\x00b", "must not contain NUL"),
    ("a\x01b", "must not contain control characters"),
    ("a\nb", "must not contain control characters"),
    ("a\x7fb", "must not contain control characters"),
    ("é" * 257, "longer than 512 bytes"),
    ("", "must be a non-empty string"),
    ("a//b", "must not contain empty or '.' segments"),
    ("a/./b", "must not contain empty or '.' segments"),
    ("dir/", "must not contain empty or '.' segments"),
]


def test_it_refuses_unsafe_paths_before_reading_the_body(version, alice, subtests):
    events = ActivityEvent.objects.count()
    for path, rule in UNSAFE_PATHS:
        with subtests.test(path=path):
            read = []

            def body(read=read):
                read.append(True)
                yield b"x"

            with pytest.raises(Invalid, match=rule):
                artifact_put(actor=alice, version=version, path=path, source=body())
            assert read == []
            assert_nothing_stored(version, events=events)
            with pytest.raises(Invalid, match=rule):
                version_create(actor=alice, model=version.model, artifacts={path: [b"x"]})
            assert ModelVersion.objects.count() == 1


def test_it_accepts_relative_posix_paths_up_to_512_bytes(version, alice):
    paths = ["model.pkl", "a/b/c.json", "é" * 256, "-x/ .hidden", "a b", "..a/b..", ".env"]
    for path in paths:
        artifact_put(actor=alice, version=version, path=path, source=[path.encode()])
    assert sorted(version.artifacts.values_list("path", flat=True)) == sorted(paths)


# --- one blob per content -------------------------------------------------------------------


def test_it_stores_the_same_content_once(version, model, alice):
    body = b"shared weights"
    artifact_put(actor=alice, version=version, path="a.bin", source=[body])
    artifact_put(actor=alice, version=version, path="copy/a.bin", source=io.BytesIO(body))
    second = version_create(actor=alice, model=model, artifacts={"b.bin": [body]})
    third = version_create(actor=alice, model=model, artifacts={"c.bin": Upload([body], sha(body))})

    assert Artifact.objects.count() == 4
    assert list(Blob.objects.values_list("sha256", "size")) == [(sha(body), len(body))]
    assert stored() == {blob_key(sha(body)): body}
    assert {a.blob_id for a in Artifact.objects.filter(version__in=[second, third])} == {sha(body)}


def test_it_replaces_content_and_collects_the_old_blob_after_commit(
    version, alice, django_capture_on_commit_callbacks
):
    artifact_put(actor=alice, version=version, path="model.bin", source=[b"old"])
    before = ModelVersion.objects.get(pk=version.pk).digest

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        artifact = artifact_put(actor=alice, version=version, path="model.bin", source=[b"new"])
        # Until commit the old bytes stay: a rollback would need them.
        assert Blob.objects.filter(pk=sha(b"old")).exists()
        assert blob_key(sha(b"old")) in stored()

    assert len(callbacks) == 2  # the blob collection, and the activity event's outbox hook
    assert artifact.blob_id == sha(b"new")
    assert Artifact.objects.filter(version=version).count() == 1
    after = ModelVersion.objects.get(pk=version.pk).digest
    assert after != before
    assert list(Blob.objects.values_list("sha256", flat=True)) == [sha(b"new")]
    assert stored() == {blob_key(sha(b"new")): b"new"}
    event = ActivityEvent.objects.order_by("-pk").first()
    assert (event.verb, event.actor, event.changes) == (
        "artifact.added",
        alice,
        {
            "path": ["model.bin", "model.bin"],
            "sha256": [sha(b"old"), sha(b"new")],
            "digest": [before, after],
        },
    )


def test_it_keeps_a_replaced_blob_that_another_artifact_still_uses(
    version, model, alice, django_capture_on_commit_callbacks
):
    artifact_put(actor=alice, version=version, path="model.bin", source=[b"old"])
    version_create(actor=alice, model=model, artifacts={"keep.bin": [b"old"]})
    with django_capture_on_commit_callbacks(execute=True):
        artifact_put(actor=alice, version=version, path="model.bin", source=[b"new"])
    assert set(Blob.objects.values_list("sha256", flat=True)) == {sha(b"old"), sha(b"new")}
    assert stored() == {blob_key(sha(b"old")): b"old", blob_key(sha(b"new")): b"new"}


def test_it_treats_putting_the_same_content_again_as_no_change(version, alice):
    first = artifact_put(actor=alice, version=version, path="m", source=[b"same"])
    events = ActivityEvent.objects.count()
    again = artifact_put(actor=alice, version=version, path="m", source=[b"same"])
    assert again.pk == first.pk
    assert ActivityEvent.objects.count() == events
    assert staging() == {}


def test_it_removes_an_artifact_and_collects_its_blob_after_commit(
    version, alice, django_capture_on_commit_callbacks
):
    artifact_put(actor=alice, version=version, path="m.bin", source=[b"bytes"])
    with_artifact = ModelVersion.objects.get(pk=version.pk).digest
    with django_capture_on_commit_callbacks(execute=True):
        artifact_delete(actor=alice, version=version, path="m.bin")
    assert not Artifact.objects.exists()
    assert not Blob.objects.exists()
    assert stored() == {}
    fresh = ModelVersion.objects.get(pk=version.pk)
    assert fresh.digest == version.digest != with_artifact
    event = ActivityEvent.objects.order_by("-pk").first()
    assert (event.verb, event.changes["path"], event.changes["sha256"]) == (
        "artifact.removed",
        ["m.bin", None],
        [sha(b"bytes"), None],
    )


def test_it_collects_the_blobs_of_a_deleted_version_after_commit(
    model, alice, django_capture_on_commit_callbacks
):
    doomed = version_create(actor=alice, model=model, artifacts={"a": [b"a"], "b": [b"b"]})
    version_create(actor=alice, model=model, artifacts={"b": [b"b"]})
    with django_capture_on_commit_callbacks(execute=True):
        version_delete(actor=alice, version=doomed)
    assert list(Blob.objects.values_list("sha256", flat=True)) == [sha(b"b")]
    assert stored() == {blob_key(sha(b"b")): b"b"}


def test_it_answers_not_found_for_removing_a_missing_artifact(version, alice):
    with pytest.raises(NotFound, match="artifact nothing.bin not found in version 1"):
        artifact_delete(actor=alice, version=version, path="nothing.bin")


@pytest.mark.django_db
def test_it_refuses_to_rewrite_a_blobs_size_or_hash_through_the_orm(model, alice):
    version_create(actor=alice, model=model, artifacts={"a.bin": io.BytesIO(b"abc")})
    blob = Blob.objects.get()
    with pytest.raises(Invalid, match="content-addressed"):
        Blob.objects.filter(pk=blob.pk).update(size=1)
    blob.size = 1
    with pytest.raises(Invalid, match="content-addressed"):
        blob.save()
    assert Blob.objects.get().size == 3
