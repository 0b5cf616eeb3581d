"""Artifacts of a version: streamed in, hashed, stored once per content (SPEC 3.5)."""

from collections.abc import Iterable
from typing import BinaryIO

from django.db import transaction

from registry import validation
from registry.digest import compute_digest
from registry.errors import NotFound
from registry.models import Artifact, ModelVersion
from registry.permissions import require
from registry.services.activity import event_record
from registry.services.blobs import blob_attach, blobs_collect_later
from registry.services.versions import locked_version, require_unlocked
from registry.storage import remove_blob_bytes, staged_upload


def _check_may_change(actor, version: ModelVersion, action: str) -> None:
    access = require(actor, version.model, "write")
    require_unlocked(version, access, action)


def artifact_put(
    *,
    actor,
    version: ModelVersion,
    path: str,
    source: BinaryIO | Iterable[bytes],
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    max_size: int | None = None,
) -> Artifact:
    """Store a file at `path` of a version (replacing what was there).

    The body streams into a staging file (on S3, a temporary object) while hashed, before
    any row is locked; a checksum mismatch, a size other than `expected_size` (a body cut
    off), a refusal or an exception part-way leaves no row, no blob and no staging file or
    temporary object behind.
    """
    validation.artifact_path(path)
    fresh = ModelVersion.objects.select_related("model__org").filter(pk=version.pk).first()
    if fresh is None:
        raise NotFound(f"version {version.number} not found")
    _check_may_change(actor, fresh, "add or replace its artifacts")  # before reading the body
    with staged_upload(
        source, expected_sha256=expected_sha256, expected_size=expected_size, max_size=max_size
    ) as staged:
        placed = False
        try:
            with transaction.atomic():
                version = locked_version(fresh)
                _check_may_change(actor, version, "add or replace its artifacts")
                existing = Artifact.objects.filter(version=version, path=path).first()
                if existing is not None and existing.blob_id == staged.sha256:
                    return existing
                blob, placed = blob_attach(staged)
                old_sha = existing.blob_id if existing else None
                if existing is None:
                    artifact = Artifact.objects.create(
                        version=version, path=path, blob=blob, created_by=actor
                    )
                else:
                    artifact = existing
                    artifact.blob = blob
                    artifact.save()
                old_digest = version.digest
                version.digest = compute_digest(version)
                version.save(update_fields=["digest", "updated_at"])
                event_record(
                    actor=actor,
                    org=version.model.org,
                    verb="artifact.added",
                    target=artifact,
                    version=version,
                    changes={
                        "path": [None if existing is None else path, path],
                        "sha256": [old_sha, blob.sha256],
                        "digest": [old_digest, version.digest],
                    },
                    data={"size": blob.size},
                )
                if old_sha is not None:
                    blobs_collect_later([old_sha])
        except BaseException:
            if placed:
                remove_blob_bytes(staged.sha256)
            raise
    return artifact


@transaction.atomic
def artifact_delete(*, actor, version: ModelVersion, path: str) -> None:
    version = locked_version(version)
    _check_may_change(actor, version, "remove its artifacts")
    artifact = Artifact.objects.filter(version=version, path=path).first()
    if artifact is None:
        raise NotFound(f"artifact {path} not found in version {version.number}")
    sha256 = artifact.blob_id
    artifact.delete()
    old_digest = version.digest
    version.digest = compute_digest(version)
    version.save(update_fields=["digest", "updated_at"])
    event_record(
        actor=actor,
        org=version.model.org,
        verb="artifact.removed",
        target=artifact,
        target_type="artifact",
        version=version,
        changes={
            "path": [path, None],
            "sha256": [sha256, None],
            "digest": [old_digest, version.digest],
        },
    )
    blobs_collect_later([sha256])
