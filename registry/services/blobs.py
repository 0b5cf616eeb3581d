"""Blob lifecycle: attach staged bytes to a Blob row, collect blobs nothing points at, and
sweep what uploads that never finished left."""

import logging
from collections.abc import Iterable

from django.db import IntegrityError, transaction

from registry.models import Blob
from registry.storage import (
    StagedUpload,
    place_blob,
    remove_blob_bytes,
    remove_unfinished,
    unfinished_uploads,
)

logger = logging.getLogger(__name__)


def blob_attach(staged: StagedUpload) -> tuple[Blob, bool]:
    """Inside the caller's transaction: the Blob row for these bytes, locked, and whether this
    call wrote the bytes (so that the caller removes them again if its transaction fails).

    The row lock orders this against blob_collect: bytes are never collected while an upload
    that is about to point at them waits.
    """
    blob = Blob.objects.select_for_update().filter(pk=staged.sha256).first()
    if blob is not None:
        return blob, False
    try:
        with transaction.atomic():
            blob = Blob.objects.create(sha256=staged.sha256, size=staged.size)
    except IntegrityError:
        # Another upload of the same content committed first: share its row and bytes.
        return Blob.objects.select_for_update().get(pk=staged.sha256), False
    return blob, place_blob(staged)


def blob_collect(*, sha256: str) -> bool:
    """Delete a blob's row and bytes if no artifact points at it any more. Idempotent."""
    with transaction.atomic():
        blob = Blob.objects.select_for_update().filter(pk=sha256).first()
        if blob is None or blob.artifacts.exists():
            return False
        # Bytes go first, while the row is locked: an upload of the same content waits on
        # the lock and then writes its bytes anew, after these are gone.
        remove_blob_bytes(sha256)
        blob.delete()
    return True


def blobs_collect_later(sha256s: Iterable[str]) -> None:
    """After commit, queue collection of blobs that may have lost their last artifact."""
    from registry.tasks import collect_blob

    for sha256 in sorted(set(sha256s)):
        transaction.on_commit(lambda sha256=sha256: collect_blob.delay(sha256))


def unfinished_uploads_sweep(*, min_age: float) -> int:
    """Remove what uploads that never finished left (a server killed midway: a staging file,
    an S3 multipart upload or temporary object), last written at least `min_age` seconds
    ago; younger ones may still be arriving. How many went. Idempotent."""
    removed = 0
    for item in unfinished_uploads():
        if item.age < min_age:
            continue
        remove_unfinished(item)
        removed += 1
        logger.warning("removed unfinished upload %s, last written %.0f s ago", item.name, item.age)
    return removed
