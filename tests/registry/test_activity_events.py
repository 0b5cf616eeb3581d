"""The activity log (SPEC 3.7): every service writes one event with its actor, verb and the
old -> new values; events are append-only; each org's events form a verifiable hash chain."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from registry.audit import (
    GENESIS,
    canonical_event,
    link_hash,
    verify_chain,
)
from registry.errors import Forbidden
from registry.models import ActivityChain, ActivityEvent, LockLevel, ModelVersion, Organization
from registry.services.activity import event_record
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.comments import comment_add
from registry.services.members import (
    member_deactivate,
    member_invite,
    member_reactivate,
    service_account_create,
)
from registry.services.orgs import (
    membership_remove,
    membership_set,
    org_create,
    org_update,
    team_create,
    team_delete,
    team_set_members,
)
from registry.services.registered_models import (
    model_create,
    model_delete,
    model_grant,
    model_revoke,
    model_update,
)
from registry.services.tokens import token_create, token_revoke
from registry.services.versions import (
    version_create,
    version_delete,
    version_set_lock_level,
    version_update,
)
from tests.conftest import triggers_lifted

pytestmark = pytest.mark.django_db


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Case:
    """One service call: who makes it, the event it must write, and that event's changes
    (a dict, or a function of what the service returned and the state before it ran)."""

    actor: str
    run: Callable[[Any], Any]
    verb: str
    target_type: str
    changes: dict | Callable[[Any, Any], dict]
    version: str = "version"  # the version the event names: "made" is the one returned
    data: dict | None = None


def _reactivate(c, actor):
    # Deactivated around the services (no event): the call measured is the reactivation.
    get_user_model().objects.filter(pk=c.bob.pk).update(is_active=False)
    return member_reactivate(actor=actor, org=c.acme, user=c.bob)


def _org_cases(c) -> dict[str, Case]:
    dave = get_user_model().objects.create_user("dave")
    token, _ = token_create(actor=c.alice, user=c.alice, name="laptop")
    return {
        "org_create": Case(
            "root",
            lambda u: org_create(actor=u, slug="initech", name="Initech", admin=dave),
            "org.created",
            "org",
            {
                "name": [None, "Initech"],
                "default_lock_level": [None, "open"],
                "required_approvals": [None, 1],
                "closed_is_final": [None, False],
            },
        ),
        "org_update": Case(
            "admin",
            lambda u: org_update(
                actor=u, org=c.acme, required_approvals=2, default_lock_level=LockLevel.REDACT
            ),
            "settings.changed",
            "org",
            {"required_approvals": [1, 2], "default_lock_level": ["open", "redact"]},
        ),
        "membership_set-add": Case(
            "admin",
            lambda u: membership_set(actor=u, org=c.acme, user=dave),
            "membership.created",
            "membership",
            {"user": [None, "dave"], "role": [None, "member"]},
        ),
        "membership_set-role": Case(
            "admin",
            lambda u: membership_set(actor=u, org=c.acme, user=c.carol, role="admin"),
            "membership.updated",
            "membership",
            {"role": ["member", "admin"]},
        ),
        "membership_remove": Case(
            "admin",
            lambda u: membership_remove(actor=u, org=c.acme, user=c.carol),
            "membership.deleted",
            "membership",
            {"user": ["carol", None], "role": ["member", None]},
        ),
        "team_create": Case(
            "admin",
            lambda u: team_create(actor=u, org=c.acme, name="risk"),
            "team.created",
            "team",
            {"name": [None, "risk"]},
        ),
        "team_set_members": Case(
            "admin",
            lambda u: team_set_members(actor=u, team=c.team, users=[c.carol, c.bob]),
            "team.updated",
            "team",
            {"members": [["alice"], ["bob", "carol"]]},
        ),
        "team_delete": Case(
            "admin",
            lambda u: team_delete(actor=u, team=c.team),
            "team.deleted",
            "team",
            {"name": ["ops", None]},
        ),
        "member_invite": Case(
            "admin",
            lambda u: member_invite(actor=u, org=c.acme, username="erin", email="e@x.org"),
            "user.invited",
            "membership",
            {"user": [None, "erin"], "email": [None, "e@x.org"], "role": [None, "member"]},
        ),
        "member_deactivate": Case(
            "admin",
            lambda u: member_deactivate(actor=u, org=c.acme, user=c.carol),
            "user.deactivated",
            "user",
            {"is_active": [True, False]},
        ),
        "member_reactivate": Case(
            "admin",
            lambda u: _reactivate(c, u),
            "user.reactivated",
            "user",
            {"is_active": [False, True]},
        ),
        "service_account_create": Case(
            "admin",
            lambda u: service_account_create(actor=u, org=c.acme, name="ci"),
            "service_account.created",
            "service_account",
            {"name": [None, "ci"], "description": [None, ""]},
            data={"user": "acme.ci"},
        ),
        "token_create": Case(
            "alice",
            lambda u: token_create(actor=u, user=u, name="ci", scope="read"),
            "token.created",
            "token",
            {"name": [None, "ci"], "scope": [None, "read"], "expires_at": [None, None]},
        ),
        "token_revoke": Case(
            "alice",
            lambda u: token_revoke(actor=u, token=token),
            "token.revoked",
            "token",
            {"revoked": [False, True]},
            data={"user": "alice", "prefix": token.prefix},
        ),
    }


def _model_cases(c) -> dict[str, Case]:
    return {
        "model_create": Case(
            "alice",
            lambda u: model_create(actor=u, org=c.acme, name="churn", description="Who leaves"),
            "model.created",
            "model",
            {
                "name": [None, "churn"],
                "description": [None, "Who leaves"],
                "readme": [None, ""],
                "visibility": [None, "organization"],
                "tags": [None, {}],
                "required_approvals": [None, None],
                "owner": [None, "alice"],
            },
        ),
        "model_update": Case(
            "alice",
            lambda u: model_update(actor=u, model=c.model, description="Scores card fraud"),
            "model.updated",
            "model",
            {"description": ["Card fraud scoring", "Scores card fraud"]},
        ),
        "model_update-governance": Case(
            "admin",
            lambda u: model_update(actor=u, model=c.model, visibility="private", owner=c.alice),
            "model.updated",
            "model",
            {"visibility": ["organization", "private"], "owner": ["admin", "alice"]},
        ),
        "model_delete": Case(
            "admin",
            lambda u: model_delete(actor=u, model=c.model),
            "model.deleted",
            "model",
            {"name": ["fraud", None]},
        ),
        "model_grant": Case(
            "admin",
            lambda u: model_grant(actor=u, model=c.model, permission="write", user=c.carol),
            "permission.granted",
            "model",
            {"permission": [None, "write"]},
            data={"grantee": "user:carol"},
        ),
        "model_revoke": Case(
            "admin",
            lambda u: model_revoke(actor=u, model=c.model, permission="approve", user=c.bob),
            "permission.revoked",
            "model",
            {"permission": ["approve", None]},
            data={"grantee": "user:bob"},
        ),
        "comment_add": Case(
            "carol",
            lambda u: comment_add(actor=u, model=c.model, version=c.version, body="Looks good"),
            "comment.added",
            "comment",
            {},
            data={"comment": "Looks good"},
        ),
    }


def _version_cases(c) -> dict[str, Case]:
    return {
        "version_create": Case(
            "alice",
            lambda u: version_create(actor=u, model=c.model, label="2.0.0", params={"lr": 1}),
            "version.created",
            "version",
            lambda made, _: {
                "number": [None, 3],
                "lock_level": [None, "open"],
                "branch": [None, "main"],
                "digest": [None, made.digest],
                "label": [None, "2.0.0"],
            },
            version="made",
        ),
        "version_update": Case(
            "alice",
            lambda u: version_update(
                actor=u, version=c.version, params={"lr": 0.2}, description="Retrained"
            ),
            "version.updated",
            "version",
            lambda made, old: {
                "params": [{"lr": 0.1}, {"lr": 0.2}],
                "description": ["", "Retrained"],
                "digest": [old.digest, made.digest],
            },
        ),
        "version_set_lock_level-raise": Case(
            "alice",
            lambda u: version_set_lock_level(actor=u, version=c.version, level="closed"),
            "lock.raised",
            "version",
            {"lock_level": ["open", "closed"]},
        ),
        "version_set_lock_level-lower": Case(
            "admin",
            lambda u: version_set_lock_level(actor=u, version=c.redacted, level="open"),
            "lock.lowered",
            "version",
            {"lock_level": ["redact", "open"]},
            version="redacted",
        ),
        "version_delete": Case(
            "alice",
            lambda u: version_delete(actor=u, version=c.version),
            "version.deleted",
            "version",
            lambda _, old: {"number": [1, None], "digest": [old.digest, None]},
        ),
        "artifact_put": Case(
            "alice",
            lambda u: artifact_put(actor=u, version=c.version, path="new.bin", source=[b"new"]),
            "artifact.added",
            "artifact",
            lambda _, old: {
                "path": [None, "new.bin"],
                "sha256": [None, sha(b"new")],
                "digest": [old.digest, ModelVersion.objects.get(pk=old.pk).digest],
            },
        ),
        "artifact_delete": Case(
            "alice",
            lambda u: artifact_delete(actor=u, version=c.version, path="model.bin"),
            "artifact.removed",
            "artifact",
            lambda _, old: {
                "path": ["model.bin", None],
                "sha256": [sha(b"weights"), None],
                "digest": [old.digest, ModelVersion.objects.get(pk=old.pk).digest],
            },
        ),
    }


CASE_NAMES = [
    "org_create",
    "org_update",
    "membership_set-add",
    "membership_set-role",
    "membership_remove",
    "team_create",
    "team_set_members",
    "team_delete",
    "member_invite",
    "member_deactivate",
    "member_reactivate",
    "service_account_create",
    "token_create",
    "token_revoke",
    "model_create",
    "model_update",
    "model_update-governance",
    "model_delete",
    "model_grant",
    "model_revoke",
    "comment_add",
    "version_create",
    "version_update",
    "version_set_lock_level-raise",
    "version_set_lock_level-lower",
    "version_delete",
    "artifact_put",
    "artifact_delete",
]


@dataclass
class World:
    acme: Organization
    model: Any
    version: Any
    redacted: Any
    team: Any
    alice: Any
    bob: Any
    carol: Any


@pytest.fixture
def world(acme, model, admin, alice, bob, carol) -> World:
    """fraud v1 (open, one artifact), fraud v2 (redact), team ops with alice."""
    version = version_create(
        actor=alice, model=model, params={"lr": 0.1}, artifacts={"model.bin": [b"weights"]}
    )
    redacted = version_create(actor=alice, model=model, lock_level=LockLevel.REDACT)
    team = team_create(actor=admin, org=acme, name="ops")
    team_set_members(actor=admin, team=team, users=[alice])
    return World(acme, model, version, redacted, team, alice, bob, carol)


def all_cases(world: World) -> dict[str, Case]:
    return {**_org_cases(world), **_model_cases(world), **_version_cases(world)}


def test_it_names_every_case(world):
    assert list(all_cases(world)) == CASE_NAMES


@pytest.mark.parametrize("name", CASE_NAMES)
def test_it_records_one_event_per_service_call(request, world, name):
    case = all_cases(world)[name]
    actor = request.getfixturevalue(case.actor)
    old = ModelVersion.objects.get(pk=world.version.pk)
    last = ActivityEvent.objects.order_by("pk").last().pk

    result = case.run(actor)

    events = list(ActivityEvent.objects.filter(pk__gt=last))
    assert [e.verb for e in events] == [case.verb]
    event = events[0]
    expected = case.changes(result, old) if callable(case.changes) else case.changes
    assert event.changes == expected
    if case.data is not None:
        assert event.data == case.data
    assert (event.actor_id, event.actor_name) == (actor.pk, actor.get_username())
    assert event.target_type == case.target_type
    org = result if isinstance(result, Organization) else world.acme
    assert event.org_id == org.pk
    chain = ActivityChain.objects.get(org_id=event.org_id)
    assert (chain.seq, chain.head) == (event.seq, event.hash)
    if case.target_type in ("version", "artifact"):
        named = {"made": result, "version": world.version, "redacted": world.redacted}
        assert event.version_id == named[case.version].pk
    if case.target_type in ("model", "version", "artifact", "comment") and name != "model_create":
        assert event.model_id == world.model.pk


# --- append-only ----------------------------------------------------------------------------


def stored_events() -> list[dict]:
    return list(ActivityEvent.objects.order_by("pk").values())


@pytest.mark.parametrize(
    "attempt",
    [
        "instance-save",
        "instance-delete",
        "queryset-update",
        "queryset-delete",
        "manager-update",
        "bulk-update",
        "related-delete",
    ],
)
def test_it_refuses_to_change_or_delete_an_event(world, attempt):
    before = stored_events()
    event = ActivityEvent.objects.filter(verb="version.created").first()
    runs = {
        "instance-save": lambda: (setattr(event, "verb", "version.forged"), event.save()),
        "instance-delete": event.delete,
        "queryset-update": lambda: ActivityEvent.objects.filter(pk=event.pk).update(verb="x"),
        "queryset-delete": lambda: ActivityEvent.objects.filter(org=world.acme).delete(),
        "manager-update": lambda: ActivityEvent.objects.update(changes={}),
        "bulk-update": lambda: ActivityEvent.objects.bulk_update([event], ["verb"]),
        "related-delete": lambda: world.acme.events.all().delete(),
    }
    # In a savepoint, as the shell's autocommit would be: bulk_update raises mid-transaction.
    refusal = pytest.raises(Forbidden, match="activity events are append-only")
    with refusal, transaction.atomic():
        runs[attempt]()
    assert stored_events() == before


# --- the hash chain -------------------------------------------------------------------------


def verify(org: Organization):
    chain = ActivityChain.objects.get(org=org)
    events = ActivityEvent.objects.filter(org=org).order_by("seq").values()
    return verify_chain(events, head_seq=chain.seq, head_hash=chain.head)


def test_it_keeps_a_verifiable_chain_through_a_realistic_day(
    acme, globex, model, admin, alice, bob, carol, mallory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        v1 = version_create(
            actor=alice,
            model=model,
            label="1.0.0",
            params={"lr": 0.1},
            metrics={"auc": 0.9},
            artifacts={"model.bin": [b"v1"]},
        )
        artifact_put(actor=alice, version=v1, path="model.bin", source=[b"v1 fixed"])
        version_update(actor=alice, version=v1, metrics={"auc": 0.91}, description="Fixed")
        comment_add(actor=bob, model=model, version=v1, body="Ship it")
        version_set_lock_level(actor=alice, version=v1, level=LockLevel.CLOSED)
        v2 = version_create(actor=alice, model=model, parents=[v1], params={"lr": 0.05})
        artifact_put(actor=alice, version=v2, path="model.bin", source=[b"v2"])
        artifact_delete(actor=alice, version=v2, path="model.bin")
        version_delete(actor=alice, version=v2)
        model_grant(actor=admin, model=model, permission="write", user=carol)
        org_update(actor=admin, org=acme, required_approvals=2)
        team = team_create(actor=admin, org=acme, name="risk")
        team_set_members(actor=admin, team=team, users=[alice, carol])
        scratch = model_create(actor=carol, org=acme, name="scratch")
        version_create(actor=carol, model=scratch, artifacts={"a": [b"a"]})
        model_delete(actor=carol, model=scratch)
        rockets = model_create(actor=mallory, org=globex, name="rockets")
        version_create(actor=mallory, model=rockets)

    acme_events = ActivityEvent.objects.filter(org=acme).count()
    assert acme_events > 20
    assert verify(acme) == (acme_events, None)
    assert verify(globex) == (ActivityEvent.objects.filter(org=globex).count(), None)
    # Events of deleted models and versions stay, still chained.
    assert ActivityEvent.objects.filter(verb="model.deleted", target_repr="scratch").exists()
    # Each org's chain is its own: seq runs 1..n without gaps.
    seqs = list(ActivityEvent.objects.filter(org=globex).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    first = ActivityEvent.objects.filter(org=globex).order_by("seq").first()
    assert first.prev_hash == GENESIS


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        (
            "UPDATE registry_activityevent SET verb = 'model.forged' WHERE org_id = %s AND seq = 3",
            3,
        ),
        ("DELETE FROM registry_activityevent WHERE org_id = %s AND seq = 2", 3),
    ],
    ids=["edited", "deleted"],
)
def test_it_shows_a_tampered_chain_as_broken(world, acme, tamper, broken_at):
    checked, ok = verify(acme)
    assert ok is None
    # Only raw SQL with the triggers lifted (the database's owner) gets past the refusals;
    # verification is what catches it.
    with transaction.atomic(), triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(tamper, [acme.pk])
    checked, broken = verify(acme)
    assert broken is not None
    assert broken.seq == broken_at


def test_it_links_an_event_to_the_one_before_by_the_documented_formula():
    # SPEC 3.7 by hand: hash = sha256(prev_hash + canonical JSON of the chained fields), the
    # keys sorted, no spaces, the time in UTC with microseconds, a version id as text.
    prev = "ab" * 32
    event = {
        "org_id": 7,
        "seq": 3,
        "created_at": datetime(2026, 12, 2, 2, 2, 3, 4, tzinfo=timezone(timedelta(hours=1))),
        "actor_id": None,
        "actor_name": "zoë",
        "verb": "version.created",
        "target_type": "version",
        "target_id": "12",
        "target_repr": "fraud v3",
        "model_id": 3,
        "version_id": 12,
        "changes": {"number": [None, 3]},
        "data": {"z": "\u2603", "a": 1},
    }
    canonical = (
        '{"actor_id":null,"actor_name":"zoë","changes":{"number":[null,3]},'
        '"created_at":"2026-12-02T01:02:03.000004Z","data":{"a":1,"z":"\u2603"},"model_id":3,'
        '"org_id":7,"seq":3,"target_id":"12","target_repr":"fraud v3","target_type":"version",'
        '"verb":"version.created","version_id":"12"}'
    )
    assert canonical_event(event) == canonical
    expected = hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()
    assert link_hash(prev, event) == expected
    assert link_hash(GENESIS, event) != expected


def test_it_appends_under_the_heads_row_lock_and_moves_the_head(acme, model, alice):
    before = ActivityChain.objects.get(org=acme)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        event = event_record(
            actor=alice,
            org=acme,
            verb="model.updated",
            target=model,
            changes={"description": ["", 'Zürich ☃ "quoted" \\ back']},
        )
    # The head read for update, the event inserted, the head moved: nothing else.
    assert len(queries) == 3
    if connection.features.has_select_for_update:
        assert "FOR NO KEY UPDATE" in queries[0]["sql"]
    stored = ActivityEvent.objects.get(pk=event.pk)
    assert (stored.seq, stored.prev_hash) == (before.seq + 1, before.head)
    assert (event.seq, event.prev_hash, event.hash) == (stored.seq, stored.prev_hash, stored.hash)
    assert stored.hash == link_hash(before.head, stored.__dict__)
    after = ActivityChain.objects.get(org=acme)
    assert (after.seq, after.head) == (stored.seq, stored.hash)
    assert verify(acme) == (ActivityEvent.objects.filter(org=acme).count(), None)


def test_it_starts_the_chain_of_an_org_made_without_one(alice):
    org = Organization.objects.create(slug="bare", name="Bare")
    assert not ActivityChain.objects.filter(org=org).exists()
    with transaction.atomic():
        first = event_record(actor=alice, org=org, verb="settings.changed", target=org)
        second = event_record(actor=alice, org=org, verb="settings.changed", target=org)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert verify(org) == (2, None)
