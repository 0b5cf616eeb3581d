"""Re-hash every stored blob and report corrupt, missing and orphaned bytes (SPEC 3.5), and
what uploads that never finished left (a server killed mid-upload leaves its staging file,
or on S3 a multipart upload or temporary object: never an artifact, since no row is written
before the whole body is hashed)."""

import time
from collections.abc import Iterable, Iterator

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry.models import Artifact, Blob
from registry.storage import (
    artifact_storage,
    blob_exists,
    blob_key,
    hash_stored_blob,
    remove_blob_bytes,
    remove_unfinished,
    stored_blob_keys,
    unfinished_uploads,
)

# Blob rows and stored keys are handled in batches: memory stays flat however many blobs.
BATCH = 500
# Users named per damaged blob; the rest are counted.
SHOWN_USERS = 3
# Bytes written this recently may belong to an upload whose transaction has not committed
# yet (the bytes are placed just before the Blob row commits): never deleted as orphans.
DEFAULT_ORPHAN_AGE = 3600


class Command(BaseCommand):
    help = (
        "Re-hash every stored blob; report corrupt (hash or size differs), missing and "
        "orphaned bytes. Exits non-zero if any blob is corrupt or missing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--delete-orphans",
            action="store_true",
            help=(
                "remove orphaned bytes (no Blob row) and what unfinished uploads left (files, "
                "S3 multipart uploads and temporary objects), older than --orphan-age seconds"
            ),
        )
        parser.add_argument(
            "--orphan-age",
            type=int,
            default=DEFAULT_ORPHAN_AGE,
            metavar="SECONDS",
            help=f"only delete orphans at least this old (default {DEFAULT_ORPHAN_AGE})",
        )

    def handle(self, *args, delete_orphans: bool, orphan_age: int, **options) -> None:
        checked = corrupt = missing = 0
        for sha256, size in _blob_rows():
            checked += 1
            problem = _check_blob(sha256, size)
            if problem is None:
                continue
            kind, detail = problem
            if kind == "missing":
                missing += 1
            else:
                corrupt += 1
            self.stderr.write(
                self.style.ERROR(f"{kind} blob sha256:{sha256}")
                + f" ({detail}): {_users_of(sha256)}"
            )
        orphans = deleted = 0
        for sha256 in _orphans():
            orphans += 1
            note = ""
            if delete_orphans:
                if _delete_orphan(sha256, orphan_age):
                    deleted += 1
                    note = " (deleted)"
                else:
                    note = f" (kept: written less than {orphan_age} s ago, or now in use)"
            self.stderr.write(
                self.style.WARNING(f"orphaned bytes sha256:{sha256}")
                + f": no blob row refers to {blob_key(sha256)}{note}"
            )
        unfinished = removed = 0
        for item in unfinished_uploads():
            unfinished += 1
            note = ""
            if delete_orphans:
                if item.age >= orphan_age:
                    remove_unfinished(item)
                    removed += 1
                    note = " (deleted)"
                else:
                    note = f" (kept: written less than {orphan_age} s ago)"
            self.stderr.write(
                self.style.WARNING(f"unfinished upload {item.name}")
                + f": never stored as a blob, last written {item.age:.0f} s ago{note}"
            )
        summary = (
            f"{checked} blobs checked: {checked - corrupt - missing} intact, {corrupt} corrupt, "
            f"{missing} missing; {orphans} orphaned"
        )
        if delete_orphans:
            summary += f" ({deleted} deleted)"
        summary += f"; {unfinished} unfinished uploads"
        if delete_orphans:
            summary += f" ({removed} deleted)"
        if corrupt or missing:
            raise CommandError(summary)
        self.stdout.write(summary)


def _blob_rows() -> Iterator[tuple[str, int]]:
    return Blob.objects.order_by("sha256").values_list("sha256", "size").iterator(chunk_size=BATCH)


def _check_blob(sha256: str, size: int) -> tuple[str, str] | None:
    """None if the stored bytes hash to their key and have the recorded size, else
    ("corrupt" or "missing", why)."""
    gone = ("missing", f"no bytes at {blob_key(sha256)}")
    if not blob_exists(sha256):
        return gone
    try:
        actual, actual_size = hash_stored_blob(sha256)
    except FileNotFoundError:
        return gone
    if actual != sha256:
        return "corrupt", f"the stored bytes hash to {actual}"
    if actual_size != size:
        return "corrupt", f"{actual_size} bytes stored, {size} recorded"
    return None


def _users_of(sha256: str) -> str:
    artifacts = (
        Artifact.objects.filter(blob_id=sha256)
        .select_related("version__model__org")
        .order_by("version__model__org__slug", "version__model__name", "version__number", "path")
    )
    total = artifacts.count()
    if total == 0:
        return "no artifact uses it"
    shown = [
        f"{a.version.model.org.slug}/{a.version.model.name} v{a.version.number} {a.path}"
        for a in artifacts[:SHOWN_USERS]
    ]
    more = f" and {total - SHOWN_USERS} more" if total > SHOWN_USERS else ""
    return "used by " + ", ".join(shown) + more


def _batched(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _orphans() -> Iterator[str]:
    for batch in _batched(stored_blob_keys()):
        known = set(Blob.objects.filter(pk__in=batch).values_list("sha256", flat=True))
        yield from (sha256 for sha256 in batch if sha256 not in known)


def _delete_orphan(sha256: str, min_age: int) -> bool:
    modified = artifact_storage().get_modified_time(blob_key(sha256))
    if time.time() - modified.timestamp() < min_age:
        return False
    with transaction.atomic():
        # Checked again under the transaction: an upload may have committed its row since.
        if Blob.objects.select_for_update().filter(pk=sha256).exists():
            return False
        remove_blob_bytes(sha256)
    return True
