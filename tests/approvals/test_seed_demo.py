"""seed_demo builds a registry in use (SPEC 4.4): ten models over three acme teams and globex,
versions in every stage and lock level whose metrics trend, lineage, flags, comments, aliases
(one protected), default reviewers, and pending requests of both kinds, each in the queue of
the people who may review it. All through the services: the chains verify, and a second run
changes nothing."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from approvals.models import RequestKind, RequestStatus, StageChangeRequest
from registry.models import (
    ActivityEvent,
    Alias,
    Artifact,
    Comment,
    Flag,
    LockLevel,
    ModelVersion,
    RegisteredModel,
    Stage,
    Team,
)

pytestmark = pytest.mark.django_db

ACME_PUBLIC = {
    "credit-scoring",
    "defect-detector",
    "doc-ocr",
    "fraud-detector",
    "ltv-forecast",
    "recommender",
}
ACME_PRIVATE = {"aml-screening", "churn-predictor"}
GLOBEX = {"demand-forecast", "pricing"}
DEMO = ACME_PUBLIC | ACME_PRIVATE | GLOBEX
# What each of the cast sees in the catalog (the private models are shared with alice and bob).
SEES = {
    "admin": {"acme": ACME_PUBLIC | ACME_PRIVATE},
    "alice": {"acme": ACME_PUBLIC | ACME_PRIVATE},
    "bob": {"acme": ACME_PUBLIC | ACME_PRIVATE},
    "carol": {"acme": ACME_PUBLIC},
    "mallory": {"globex": GLOBEX},
}
# The pending requests, as (model, version, kind, requester).
PENDING = {
    ("fraud-detector", 4, RequestKind.STAGE, "alice"),
    ("fraud-detector", 3, RequestKind.ALIAS_MOVE, "alice"),
    ("credit-scoring", 3, RequestKind.STAGE, "alice"),
    ("doc-ocr", 3, RequestKind.STAGE, "alice"),
    ("aml-screening", 2, RequestKind.STAGE, "admin"),
}
# Whose queue holds which: never a requester's own, never carol's (she approves nothing).
QUEUES = {
    "admin": {p for p in PENDING if p[3] != "admin"},
    "alice": {p for p in PENDING if p[3] != "alice"},
    "bob": PENDING,
    "carol": set(),
    "mallory": set(),
}


@pytest.fixture
def seeded(cast):
    call_command("seed_demo", stdout=io.StringIO())
    return cast


def demo_models():
    return RegisteredModel.objects.filter(name__in=DEMO)


def test_it_builds_ten_models_over_teams_in_every_stage_and_lock_level(seeded):
    assert set(demo_models().values_list("name", flat=True)) == DEMO
    teams = {model.name: model.tags.get("team") for model in demo_models().filter(org=seeded.acme)}
    assert set(teams.values()) == {"risk", "growth", "vision"}
    versions = ModelVersion.objects.filter(model__in=demo_models())
    assert set(versions.values_list("stage", flat=True)) == set(Stage.values)
    assert set(versions.values_list("lock_level", flat=True)) == set(LockLevel.values)
    # Every version has its files, stored through the artifact service.
    assert Artifact.objects.filter(version__in=versions).count() == 2 * versions.count()
    # Metrics trend over the versions, each the child of the one before.
    fraud = list(versions.filter(model__name="fraud-detector").order_by("number"))
    aucs = [version.metrics["auc"] for version in fraud]
    assert aucs == sorted(aucs) and len(set(aucs)) == 4
    assert [list(v.parents.values_list("number", flat=True)) for v in fraud] == [[], [1], [2], [3]]
    # Lineage across models: the AML screen is fine-tuned from the fraud detector's v2.
    aml = versions.get(model__name="aml-screening", number=1)
    assert [(p.model.name, p.number) for p in aml.parents.all()] == [("fraud-detector", 2)]
    # An experiment on an unprotected branch.
    experiment = versions.get(model__name="ltv-forecast", branch__name="exp-transformer")
    assert not experiment.branch.protected


def test_it_records_flags_comments_aliases_and_default_reviewers(seeded):
    champion = Alias.objects.select_related("version").get(
        model__name="fraud-detector", name="champion"
    )
    assert (champion.version.number, champion.version.stage, champion.protected) == (
        2,
        Stage.PRODUCTION,
        True,
    )
    assert Alias.objects.filter(model__in=demo_models(), protected=False).count() >= 3
    open_flags = Flag.objects.open().filter(model__in=demo_models())
    assert set(open_flags.values_list("model__name", flat=True)) == {
        "fraud-detector",
        "defect-detector",
    }
    assert Flag.objects.filter(model__name="doc-ocr", resolved_at__isnull=False).exists()
    assert Comment.objects.filter(model__in=demo_models()).count() >= 4
    seeded.acme.refresh_from_db()
    reviewers = seeded.acme.default_reviewers
    assert reviewers is not None
    assert set(reviewers.group.user_set.values_list("username", flat=True)) == {"alice", "bob"}
    assert set(Team.objects.filter(org=seeded.acme).values_list("name", flat=True)) == {
        "growth",
        "reviewers",
        "risk",
        "vision",
    }
    # Approved and rejected requests too, and nobody approved their own.
    closed = StageChangeRequest.objects.filter(model__in=demo_models())
    assert closed.filter(status=RequestStatus.APPROVED).count() >= 10
    assert closed.filter(status=RequestStatus.REJECTED).count() == 1
    for event in ActivityEvent.objects.filter(verb="stage.approved").select_related("actor"):
        request = StageChangeRequest.objects.get(pk=int(event.target_id))
        assert request.requester_id != event.actor_id


def test_it_shows_each_user_the_models_they_may_see(seeded, client):
    for username, sees in SEES.items():
        user = seeded.users[username]
        for slug in ("acme", "globex"):
            visible = RegisteredModel.objects.visible_to(user).filter(org__slug=slug)
            names = set(visible.filter(name__in=DEMO).values_list("name", flat=True))
            assert names == sees.get(slug, set()), username
        client.force_login(user)
        (slug, expected), *_ = sees.items()
        page = client.get(reverse("catalog:catalog", args=[slug])).content.decode()
        for name in DEMO:
            assert (f">{name}</a>" in page) == (name in expected), (username, name)


def test_it_queues_each_pending_request_for_its_reviewers(seeded, client):
    def described(requests) -> set:
        requests = requests.select_related("model", "version", "requester")
        return {(r.model.name, r.version.number, r.kind, r.requester.username) for r in requests}

    pending = StageChangeRequest.objects.pending().filter(model__in=demo_models())
    assert described(pending) == PENDING
    for username, queue in QUEUES.items():
        user = seeded.users[username]
        assert described(pending.reviewable_by(user)) == queue, username
        client.force_login(user)
        page = client.get(reverse("approvals:pending")).content.decode()
        count = len(queue)
        assert f"{count} request{'s' if count != 1 else ''} waiting for you" in page, username


def test_it_is_idempotent_and_its_activity_verifies(seeded):
    def state():
        return {
            table.__name__: table.objects.count()
            for table in (
                ActivityEvent,
                RegisteredModel,
                ModelVersion,
                Artifact,
                StageChangeRequest,
                Alias,
                Flag,
                Comment,
                Team,
            )
        }

    before = state()
    call_command("seed_demo", stdout=io.StringIO())
    assert state() == before
    out = io.StringIO()
    call_command("verify_activity", "--state", stdout=out)
    report = out.getvalue()
    assert "acme:" in report and "globex:" in report
    assert report.count("chain intact") == 2 and "as the activity log says" in report
