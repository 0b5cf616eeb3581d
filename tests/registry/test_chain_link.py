"""The chain's link formula, pinned apart from registry/audit.py (SPEC 3.7):
`hash = sha256(prev_hash + canonical event)`, the canonical event being the JSON of the
chained fields with sorted keys, no spaces, the time in UTC with microseconds and a version
id as text. The expected values here are computed by hand, never by the helper under test.
"""

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest

from registry.audit import GENESIS, link_hash, verify_chain
from registry.models import ActivityEvent
from registry.services.comments import comment_add
from registry.services.versions import version_create

VERSION_ID = "9b2f6a0c-8d1e-4f3a-9c7b-5e4d3c2b1a09"
KNOWN_PREV = "0123456789abcdef" * 4
KNOWN_EVENT = {
    "org_id": 1,
    "seq": 42,
    "created_at": datetime(2026, 3, 1, 9, 30, 0, 250, tzinfo=UTC),
    "actor_id": 4,
    "actor_name": "alice",
    "verb": "stage.applied",
    "target_type": "version",
    "target_id": VERSION_ID,
    "target_repr": "fraud v7",
    "model_id": 2,
    "version_id": uuid.UUID(VERSION_ID),
    "changes": {"stage": ["staging", "production"]},
    "data": {"request": 17},
}
# The chained fields, as documented (docs/architecture.md, "The hash chain").
CHAINED = tuple(KNOWN_EVENT)
KNOWN_CANONICAL = (
    '{"actor_id":4,"actor_name":"alice","changes":{"stage":["staging","production"]},'
    '"created_at":"2026-03-01T09:30:00.000250Z","data":{"request":17},"model_id":2,'
    f'"org_id":1,"seq":42,"target_id":"{VERSION_ID}","target_repr":"fraud v7",'
    f'"target_type":"version","verb":"stage.applied","version_id":"{VERSION_ID}"}}'
)
# sha256 of KNOWN_PREV + KNOWN_CANONICAL, computed once outside Python (`printf %s ... |
# sha256sum`): a literal, so that no helper of this suite can drift with the code.
KNOWN_LINK = "c99e79ea051fa5226de61c8668b098a6f495ff4b81d52685da7ba1c71f1e7a60"


def canonical_by_hand(event: dict) -> str:
    """The canonical event as SPEC 3.7 documents it, written out again."""
    fields = {name: event[name] for name in CHAINED}
    if isinstance(fields["created_at"], datetime):
        fields["created_at"] = (
            fields["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        )
    if fields["version_id"] is not None:
        fields["version_id"] = str(fields["version_id"])
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def by_hand(prev_hash: str, event: dict) -> str:
    return hashlib.sha256((prev_hash + canonical_by_hand(event)).encode("utf-8")).hexdigest()


def test_it_links_a_known_event_to_a_literal_hash():
    assert hashlib.sha256((KNOWN_PREV + KNOWN_CANONICAL).encode()).hexdigest() == KNOWN_LINK
    assert by_hand(KNOWN_PREV, KNOWN_EVENT) == KNOWN_LINK
    assert link_hash(KNOWN_PREV, KNOWN_EVENT) == KNOWN_LINK


@pytest.mark.parametrize(
    "other_prev",
    [
        GENESIS,
        "1" + KNOWN_PREV[1:],  # the first character
        KNOWN_PREV[:-1] + "0",  # the last character
        "",
    ],
    ids=["genesis", "first-char", "last-char", "empty"],
)
def test_it_changes_the_link_when_the_previous_hash_changes(other_prev):
    # The same event after another previous hash is another link: the link covers the chain
    # before it, not only the event's own content.
    changed = link_hash(other_prev, KNOWN_EVENT)

    assert changed != KNOWN_LINK
    assert changed == by_hand(other_prev, KNOWN_EVENT)


def test_it_refuses_an_event_hashed_without_its_previous_hash():
    # An event whose stored prev_hash is right but whose hash leaves the previous hash out
    # (sha256 of the canonical event alone) is an edit, not a link.
    first = {**KNOWN_EVENT, "seq": 1, "prev_hash": GENESIS}
    first["hash"] = by_hand(GENESIS, first)
    second = {**KNOWN_EVENT, "seq": 2, "verb": "stage.requested", "prev_hash": first["hash"]}
    second["hash"] = hashlib.sha256(canonical_by_hand(second).encode()).hexdigest()

    checked, broken = verify_chain([first, second], head_seq=2, head_hash=second["hash"])

    assert checked == 1
    assert broken is not None and broken.seq == 2
    assert "does not match its hash" in broken.reason


@pytest.mark.django_db
def test_it_stores_each_event_linked_by_the_documented_formula(model, alice, bob):
    version_create(actor=alice, model=model, params={"lr": 0.1}, description="zoë ☃")
    comment_add(actor=bob, model=model, body='a "quoted" comment \\ with a backslash')
    events = list(
        ActivityEvent.objects.filter(org=model.org)
        .order_by("seq")
        .values(*CHAINED, "prev_hash", "hash")
    )
    assert len(events) >= 3

    prev = GENESIS
    for event in events:
        assert event["prev_hash"] == prev
        assert event["hash"] == by_hand(prev, event)
        prev = event["hash"]
