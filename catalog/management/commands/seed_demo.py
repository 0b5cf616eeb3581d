"""The demo registry of `make run` (SPEC 4.4): the cast of registry/demo.py, acme's teams and
default reviewers, and ten models in use: versions whose metrics trend, lineage, every stage
and lock level, aliases (one protected), flags, comments, and pending requests of both kinds.

Everything goes through the domain services, so the activity chains verify. Idempotent: a
model that exists is left as it is (and so is a team); a second run changes nothing.
"""

import io
import json

from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.services import (
    alias_request_create,
    request_approve,
    request_create,
    request_reject,
)
from registry.demo import CAST, demo_password, ensure_cast, ensure_shared_model, ensure_teams
from registry.models import LockLevel, ModelVersion, RegisteredModel, Stage, Visibility
from registry.services.aliases import alias_protect, alias_set
from registry.services.branches import branch_create
from registry.services.comments import comment_add
from registry.services.flags import flag_raise, flag_resolve
from registry.services.registered_models import model_create
from registry.services.tokens import token_create
from registry.services.versions import version_create

README = """# Card fraud scoring

Gradient-boosted trees over card transactions. Scores are calibrated probabilities.

* **Owner:** risk analytics
* **Retraining:** monthly, on the last 90 days of labelled transactions
"""

CLOSED, REDACT, OPEN = LockLevel.CLOSED, LockLevel.REDACT, LockLevel.OPEN


def register(
    actor,
    model: RegisteredModel,
    metrics: list[dict],
    *,
    framework: str,
    levels: tuple = (),
    parent: ModelVersion | None = None,
    branch: str = "main",
    first_label: int = 0,
    **ingredients,
) -> list[ModelVersion]:
    """One version per entry of `metrics`, each the child of the one before (the first, of
    `parent`), with two small files through the artifact service."""
    versions = []
    for index, values in enumerate(metrics):
        number = first_label + index
        previous = versions[-1] if versions else parent
        version = version_create(
            actor=actor,
            model=model,
            branch=branch,
            lock_level=levels[index] if index < len(levels) else None,
            label=f"1.{number}.0" if branch == "main" else f"1.{number}.0-{branch}",
            description=f"Retrained with {(number + 1) * 3} months of data",
            parents=[previous] if previous is not None else [],
            framework=framework,
            flavor="python_function",
            metrics=values,
            environment={"python_version": "3.11", "requirements": f"{framework}\n"},
            code_version={
                "repo": f"git@example.com:ml/{model.name}.git",
                "commit": f"{number:07x}",
            },
            artifacts={
                "model.json": io.BytesIO(json.dumps({"model": model.name, "v": number}).encode()),
                "README.txt": io.BytesIO(f"{model.name} {number}: {values}\n".encode()),
            },
            **ingredients,
        )
        versions.append(version)
    return versions


def move(version, stage, *, requester, reviewer, comment: str = "", **options) -> None:
    """A stage change as people make it: requested, then approved by someone else."""
    request = request_create(
        actor=requester, version=version, to_stage=stage, comment=comment, **options
    )
    request_approve(actor=reviewer, request=request, comment="Approved.")


class Command(BaseCommand):
    help = "Create the demo organizations, users, teams and models (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tokens",
            metavar="FILE",
            help='write a new API token of each demo user to FILE as JSON {"username": token}',
        )

    def handle(self, *args, **options):
        with transaction.atomic():
            cast = ensure_cast()
            # Before the models: the default reviewers approve each model made after them.
            ensure_teams(cast)
            for build in (
                self._globex,
                self._ocr,
                self._defects,
                self._churn,
                self._ltv,
                self._recommender,
                self._fraud,
                self._credit,
                self._aml,
            ):
                build(cast)
        if options["tokens"]:
            self._tokens(cast, options["tokens"])
        self.stdout.write("Demo organizations: acme, globex. Logins (embedded default only):")
        for username, (org, role, _) in CAST.items():
            self.stdout.write(f"  {username:8} / {demo_password(username):14} {org} {role}")

    def _tokens(self, cast, path: str) -> None:
        tokens = {}
        for username in CAST:
            user = getattr(cast, username)
            tokens[username] = token_create(actor=user, user=user, name="demo")[1]
        with open(path, "w", encoding="utf-8") as out:
            json.dump(tokens, out, indent=2)
        self.stdout.write(f"API tokens of the demo users written to {path}")

    @staticmethod
    def _new(cast, name: str, **fields) -> RegisteredModel | None:
        """The acme model `name`, made and shared as the cast says; None when it exists."""
        if RegisteredModel.objects.filter(org=cast.acme, name=name).exists():
            return None
        return ensure_shared_model(cast, name, **fields)

    # Team risk

    def _fraud(self, cast) -> None:
        model = self._new(
            cast,
            "fraud-detector",
            description="Scores card transactions for fraud",
            readme=README,
            tags={"team": "risk", "task": "classification"},
        )
        if model is None:
            return
        v1, v2, v3, v4 = register(
            cast.alice,
            model,
            [
                {"auc": 0.81, "precision": 0.76},
                {"auc": 0.86, "precision": 0.81},
                {"auc": 0.89, "precision": 0.84},
                {"auc": 0.91, "precision": 0.86},
            ],
            framework="xgboost",
            levels=(CLOSED, CLOSED, REDACT),
            params={"max_depth": 6, "learning_rate": 0.1, "n_estimators": 200},
            datasets=[{"name": "transactions", "uri": "s3://data/tx", "version": "2026-01"}],
        )
        comment_add(actor=cast.bob, model=model, body="AUC keeps improving; v4 looks promising.")
        move(v1, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)
        move(v2, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        move(
            v2,
            Stage.PRODUCTION,
            requester=cast.alice,
            reviewer=cast.admin,
            comment="Beats v1 on every metric in staging.",
            archive_existing=True,
        )
        move(v3, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        move(v4, Stage.DEVELOPMENT, requester=cast.alice, reviewer=cast.bob)
        alias_set(actor=cast.admin, model=model, name="champion", version=v2)
        alias_protect(actor=cast.admin, model=model, name="champion")
        alias_set(actor=cast.alice, model=model, name="challenger", version=v3)
        flag = flag_raise(
            actor=cast.carol,
            version=v2,
            severity="medium",
            summary="False positives up on prepaid cards since Monday",
            details="Seen in the **prepaid** segment only; the others look normal.",
        )
        comment_add(
            actor=cast.alice,
            model=model,
            version=v2,
            body=f"Looking into flag #{flag.pk}: a new prepaid issuer went live on Monday.",
        )
        request_create(
            actor=cast.alice,
            version=v4,
            to_stage=Stage.STAGING,
            comment="AUC 0.91 offline; ready for shadow traffic.",
        )
        alias_request_create(
            actor=cast.alice,
            model=model,
            name="champion",
            version=v3,
            comment="v3 has held up in staging for two weeks: make it the champion.",
        )

    def _credit(self, cast) -> None:
        model = self._new(
            cast,
            "credit-scoring",
            description="Probability of default for consumer loans",
            tags={"team": "risk", "task": "classification", "regulated": "yes"},
        )
        if model is None:
            return
        v1, v2, v3 = register(
            cast.alice,
            model,
            [{"auc": 0.72, "gini": 0.44}, {"auc": 0.75, "gini": 0.50}, {"auc": 0.78, "gini": 0.56}],
            framework="lightgbm",
            levels=(CLOSED, CLOSED, REDACT),
            params={"num_leaves": 31, "min_child_samples": 50},
        )
        move(v1, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)
        move(v2, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        move(
            v2,
            Stage.PRODUCTION,
            requester=cast.alice,
            reviewer=cast.admin,
            archive_existing=True,
            comment="Fairness review signed off.",
        )
        alias_set(actor=cast.alice, model=model, name="prod", version=v2)
        move(v3, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        request_create(
            actor=cast.alice,
            version=v3,
            to_stage=Stage.PRODUCTION,
            archive_existing=True,
            comment="Gini **0.56** on the October holdout; replaces v2.",
        )

    def _aml(self, cast) -> None:
        model = self._new(
            cast,
            "aml-screening",
            description="Flags transfers for anti-money-laundering review (private to risk)",
            visibility=Visibility.PRIVATE,
            tags={"team": "risk", "task": "classification"},
        )
        if model is None:
            return
        # Fine-tuned from the fraud detector in production: lineage across models.
        parent = ModelVersion.objects.filter(
            model__org=cast.acme, model__name="fraud-detector", number=2
        ).first()
        v1, v2 = register(
            cast.alice,
            model,
            [{"recall": 0.64, "precision": 0.41}, {"recall": 0.70, "precision": 0.44}],
            framework="xgboost",
            parent=parent,
        )
        move(v1, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        # Filed by the admin, so that alice has something to review too.
        request_create(
            actor=cast.admin,
            version=v2,
            to_stage=Stage.STAGING,
            comment="Recall up six points; please review.",
        )

    # Team growth

    def _churn(self, cast) -> None:
        model = self._new(
            cast,
            "churn-predictor",
            description="Predicts customers likely to leave (private: carol cannot see it)",
            visibility=Visibility.PRIVATE,
            tags={"team": "growth", "task": "classification"},
        )
        if model is None:
            return
        v1, v2, _ = register(
            cast.alice,
            model,
            [{"f1": 0.72}, {"f1": 0.75}, {"f1": 0.79}],
            framework="sklearn",
        )
        move(v2, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)

    def _ltv(self, cast) -> None:
        model = self._new(
            cast,
            "ltv-forecast",
            description="Twelve-month customer lifetime value",
            tags={"team": "growth", "task": "regression"},
        )
        if model is None:
            return
        v1, v2, v3 = register(
            cast.alice,
            model,
            [{"rmse": 41.2, "mae": 30.1}, {"rmse": 37.5, "mae": 27.4}, {"rmse": 35.9, "mae": 26.0}],
            framework="pytorch",
            params={"hidden": 128, "epochs": 40},
        )
        move(v2, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)
        move(v3, Stage.STAGING, requester=cast.alice, reviewer=cast.bob)
        # An experiment on a branch of its own: it stays out of production until promoted.
        branch_create(actor=cast.alice, model=model, name="exp-transformer")
        (experiment,) = register(
            cast.alice,
            model,
            [{"rmse": 33.1, "mae": 24.8}],
            framework="pytorch",
            parent=v3,
            branch="exp-transformer",
            first_label=3,
            params={"layers": 4, "heads": 8},
        )
        move(experiment, Stage.DEVELOPMENT, requester=cast.alice, reviewer=cast.bob)
        comment_add(
            actor=cast.bob,
            model=model,
            version=experiment,
            body="Promising. Does the gain hold on the **new-customer** cohort?",
        )

    def _recommender(self, cast) -> None:
        model = self._new(
            cast,
            "recommender",
            description="Next-best product on the home page",
            tags={"team": "growth", "task": "ranking"},
        )
        if model is None:
            return
        v1, v2, v3, v4 = register(
            cast.alice,
            model,
            [
                {"ndcg_at_10": 0.31, "hit_rate": 0.52},
                {"ndcg_at_10": 0.34, "hit_rate": 0.55},
                {"ndcg_at_10": 0.36, "hit_rate": 0.58},
                {"ndcg_at_10": 0.38, "hit_rate": 0.60},
            ],
            framework="pytorch",
            levels=(OPEN, OPEN, CLOSED),
        )
        move(v1, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)
        move(v3, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob, archive_existing=True)
        alias_set(actor=cast.alice, model=model, name="champion", version=v3)
        request = request_create(actor=cast.alice, version=v4, to_stage=Stage.PRODUCTION)
        request_reject(
            actor=cast.bob, request=request, comment="Wait for the A/B test to finish first."
        )
        move(v4, Stage.STAGING, requester=cast.alice, reviewer=cast.bob, comment="A/B test.")

    # Team vision

    def _ocr(self, cast) -> None:
        model = self._new(
            cast,
            "doc-ocr",
            description="Reads scanned invoices",
            tags={"team": "vision", "task": "ocr"},
        )
        if model is None:
            return
        v1, v2, v3 = register(
            cast.alice,
            model,
            [{"cer": 0.081, "wer": 0.19}, {"cer": 0.064, "wer": 0.15}, {"cer": 0.052, "wer": 0.12}],
            framework="onnx",
            levels=(CLOSED, CLOSED),
        )
        move(v1, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob)
        move(v2, Stage.PRODUCTION, requester=cast.alice, reviewer=cast.bob, archive_existing=True)
        alias_set(actor=cast.admin, model=model, name="stable", version=v2)
        alias_protect(actor=cast.admin, model=model, name="stable")
        flag = flag_raise(
            actor=cast.carol,
            version=v2,
            severity="low",
            summary="Rotated scans read poorly",
        )
        flag_resolve(actor=cast.alice, flag=flag, resolution="Deskewing added upstream.")
        request_create(
            actor=cast.alice,
            version=v3,
            to_stage=Stage.STAGING,
            comment="CER down to 5.2%.",
        )

    def _defects(self, cast) -> None:
        model = self._new(
            cast,
            "defect-detector",
            description="Finds scratches on the assembly line's camera frames",
            tags={"team": "vision", "task": "detection"},
        )
        if model is None:
            return
        v1, v2 = register(
            cast.alice, model, [{"map_50": 0.71}, {"map_50": 0.77}], framework="pytorch"
        )
        move(v2, Stage.DEVELOPMENT, requester=cast.alice, reviewer=cast.bob)
        flag_raise(
            actor=cast.bob,
            version=v2,
            severity="high",
            summary="Misses scratches under the new lighting",
            details="Line 3 switched to LED panels; recall there fell to 0.4.",
        )
        comment_add(
            actor=cast.carol,
            model=model,
            body="Line 3 photos from this week are in `s3://vision/line3/2026-10/`.",
        )

    # globex: mallory alone, so nobody there can review (no requests)

    def _globex(self, cast) -> None:
        for name, metric, values, framework in (
            ("pricing", "rmse", (3.2, 2.9, 2.7), "lightgbm"),
            ("demand-forecast", "mape", (12.4, 10.9), "prophet"),
        ):
            if RegisteredModel.objects.filter(org=cast.globex, name=name).exists():
                continue
            model = model_create(
                actor=cast.mallory, org=cast.globex, name=name, tags={"team": "commercial"}
            )
            register(
                cast.mallory, model, [{metric: value} for value in values], framework=framework
            )
