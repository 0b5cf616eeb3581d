import io
import json

from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.services import request_approve, request_create
from registry.demo import CAST, demo_password, ensure_cast, ensure_shared_model
from registry.models import LockLevel, RegisteredModel, Stage, Visibility
from registry.services.aliases import alias_protect, alias_set
from registry.services.comments import comment_add
from registry.services.registered_models import model_create, model_grant
from registry.services.tokens import token_create
from registry.services.versions import version_create, version_set_lock_level

README = """# Card fraud scoring

Gradient-boosted trees over card transactions. Scores are calibrated probabilities.

* **Owner:** risk analytics
* **Retraining:** monthly, on the last 90 days of labelled transactions
"""


class Command(BaseCommand):
    help = "Create the demo organizations, users and models (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--tokens",
            metavar="FILE",
            help='write a new API token of each demo user to FILE as JSON {"username": token}',
        )

    def handle(self, *args, **options):
        with transaction.atomic():
            cast = ensure_cast()
            self._fraud(cast)
            self._churn(cast)
            self._globex(cast)
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

    def _fraud(self, cast) -> None:
        if RegisteredModel.objects.filter(org=cast.acme, name="fraud-detector").exists():
            return
        model = ensure_shared_model(
            cast,
            "fraud-detector",
            description="Scores card transactions for fraud",
            readme=README,
            tags={"team": "risk", "task": "classification"},
        )
        versions = []
        for number, (auc, level) in enumerate(
            [
                (0.81, LockLevel.CLOSED),
                (0.86, LockLevel.CLOSED),
                (0.89, LockLevel.REDACT),
                (0.91, LockLevel.OPEN),
            ],
            start=1,
        ):
            version = version_create(
                actor=cast.alice,
                model=model,
                label=f"1.{number - 1}.0",
                description=f"Retrained with {number * 3} months of data",
                framework="xgboost",
                flavor="python_function",
                params={"max_depth": 4 + number, "learning_rate": 0.1, "n_estimators": 200},
                metrics={"auc": auc, "precision": round(auc - 0.05, 2)},
                environment={"python_version": "3.11", "requirements": "xgboost==2.1.0\n"},
                datasets=[
                    {"name": "transactions", "uri": "s3://data/tx", "version": f"2026-0{number}"}
                ],
                code_version={"repo": "git@example.com:risk/fraud.git", "commit": f"{number:07x}"},
                artifacts={
                    "model.json": io.BytesIO(f'{{"trees": {number}}}'.encode()),
                    "README.txt": io.BytesIO(b"Gradient-boosted trees.\n"),
                },
            )
            if level != LockLevel.OPEN:
                version_set_lock_level(actor=cast.alice, version=version, level=level)
            versions.append(version)
        comment_add(actor=cast.bob, model=model, body="AUC keeps improving; v4 looks promising.")
        self._stages(cast, model, *versions)

    def _stages(self, cast, model, v1, v2, v3, v4) -> None:
        """Every stage through the real workflow (alice asks, bob or admin approves), the
        aliases, and one request left pending for bob."""

        def move(version, stage, reviewer, comment, **options):
            request = request_create(
                actor=cast.alice, version=version, to_stage=stage, comment=comment, **options
            )
            request_approve(actor=reviewer, request=request, comment="Approved.")

        move(v1, Stage.PRODUCTION, cast.bob, "First model for the fraud team.")
        move(v2, Stage.STAGING, cast.bob, "Retrained with six months of data.")
        move(
            v2,
            Stage.PRODUCTION,
            cast.admin,
            "Beats v1 on every metric in staging.",
            archive_existing=True,
        )
        move(v3, Stage.STAGING, cast.bob, "Shadow traffic this week.")
        move(v4, Stage.DEVELOPMENT, cast.bob, "Feature work in progress.")
        alias_set(actor=cast.admin, model=model, name="champion", version=v2)
        alias_protect(actor=cast.admin, model=model, name="champion")
        alias_set(actor=cast.alice, model=model, name="challenger", version=v3)
        request_create(
            actor=cast.alice,
            version=v4,
            to_stage=Stage.STAGING,
            comment="AUC 0.91 offline; ready for shadow traffic.",
        )

    def _churn(self, cast) -> None:
        if RegisteredModel.objects.filter(org=cast.acme, name="churn-predictor").exists():
            return
        model = ensure_shared_model(
            cast,
            "churn-predictor",
            description="Predicts customers likely to leave (private: carol cannot see it)",
            visibility=Visibility.PRIVATE,
        )
        version_create(
            actor=cast.alice,
            model=model,
            framework="sklearn",
            metrics={"f1": 0.72},
            artifacts={"model.pkl": io.BytesIO(b"demo bytes, never unpickled")},
        )

    def _globex(self, cast) -> None:
        if RegisteredModel.objects.filter(org=cast.globex, name="pricing").exists():
            return
        model = model_create(actor=cast.mallory, org=cast.globex, name="pricing")
        model_grant(actor=cast.mallory, model=model, permission="write", user=cast.mallory)
        version_create(actor=cast.mallory, model=model, framework="lightgbm", metrics={"rmse": 3.2})
