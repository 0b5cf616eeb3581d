"""The activity hash chain (SPEC 3.7): canonical form, link hashes and verification.

These functions are pure, so that the same code verifies the database (verify_activity)
and, later, an exported file with no database at all.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

# The fields of an event that its hash covers, in the order they are documented.
CHAINED_FIELDS = (
    "org_id",
    "seq",
    "created_at",
    "actor_id",
    "actor_name",
    "verb",
    "target_type",
    "target_id",
    "target_repr",
    "model_id",
    "version_id",
    "changes",
    "data",
)


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, no NaN (refused rather than guessed)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: event[name] for name in CHAINED_FIELDS}
    fields["created_at"] = _timestamp(fields["created_at"])
    if fields["version_id"] is not None:
        fields["version_id"] = str(fields["version_id"])
    return fields


def canonical_event(event: Mapping[str, Any]) -> str:
    return canonical_json(_canonical_fields(event))


def link_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_event(event)).encode()).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event #{self.seq}" if self.seq is not None else "chain end"
        return f"{where}: {self.reason}"


def verify_chain(
    events: Iterable[Mapping[str, Any]], *, head_seq: int | None, head_hash: str | None
) -> tuple[int, BrokenLink | None]:
    """Walk events in seq order; return how many checked and the first broken link, if any.

    An edit shows as a wrong hash, a deletion as a gap in seq, an insertion or a swap as a
    prev_hash or hash that no longer matches, a truncation as a chain shorter than its head.
    """
    expected_seq = 1
    prev = GENESIS
    checked = 0
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            if seq > expected_seq:
                reason = f"expected event #{expected_seq} next, found #{seq}: events are missing"
            else:
                reason = f"expected event #{expected_seq} next, found #{seq} again or out of order"
            return checked, BrokenLink(seq, reason)
        if event["prev_hash"] != prev:
            return checked, BrokenLink(seq, "prev_hash does not match the hash of the event before")
        if link_hash(prev, event) != event["hash"]:
            return checked, BrokenLink(seq, "its content does not match its hash (edited)")
        prev = event["hash"]
        expected_seq += 1
        checked += 1
    if head_seq is not None:
        last = expected_seq - 1
        if last != head_seq:
            return checked, BrokenLink(
                None if last == 0 else last,
                f"the chain ends at event #{last} but its head records #{head_seq}: "
                + ("events were removed from the end" if last < head_seq else "events were added"),
            )
        if head_hash is not None and head_seq > 0 and prev != head_hash:
            return checked, BrokenLink(last, "the last event's hash does not match the chain head")
    return checked, None
