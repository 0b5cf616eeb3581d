"""Web UI benchmarks (issue 4): server time and query counts of the catalog, the model card
of a model with many versions, and the version page.

`run(results)` expects django.setup() done, migrations applied and the demo cast created,
on a throwaway database: it adds models and versions to it. Target: p50 <= 50 ms each, and
query counts that do not grow with the data.
"""

import statistics
import sys
import time
from typing import Any

MODELS = 10_000
VERSIONS_PER_MODEL = 10
BIG_MODEL_VERSIONS = 200_000
REQUESTS = 30
TARGET_MS = 50.0

PAGES = {
    "ui_catalog": "catalog, first page",
    "ui_model_card": "model card (overview) of the big model",
    "ui_model_versions": "model card, versions tab of the big model",
    "ui_version_page": "version page of the big model's latest version",
}


TITLES = PAGES


def describe(name: str, figure: dict[str, Any]) -> str:
    queries = "/".join(str(n) for n in figure["queries"])
    return f"p50 {figure['p50_ms']:.2f} ms (max {figure['max_ms']:.0f}), {queries} queries"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed(cast) -> Any:
    """MODELS models x VERSIONS_PER_MODEL versions, plus one model with BIG_MODEL_VERSIONS.

    Bulk-created with numbers kept consistent with VersionSequence: registering 300,000
    versions through the services would take long and measure version_create, not the pages.
    The pages read the rows as the services would have written them.
    """
    from django.db import transaction

    from registry.demo import ensure_shared_model
    from registry.models import (
        Branch,
        ModelVersion,
        RegisteredModel,
        Stage,
        VersionSequence,
    )

    stages = [Stage.UNASSIGNED, Stage.DEVELOPMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED]
    big = ensure_shared_model(cast, "bench-ui-big")
    with transaction.atomic():
        models = RegisteredModel.objects.bulk_create(
            [
                RegisteredModel(org=cast.acme, name=f"bench-ui-{i:05d}", owner=cast.admin)
                for i in range(MODELS)
            ],
            batch_size=2000,
        )
        branches = Branch.objects.bulk_create(
            [Branch(model=m, name=Branch.MAIN, protected=True) for m in models], batch_size=2000
        )
        VersionSequence.objects.bulk_create(
            [VersionSequence(model=m, last_number=VERSIONS_PER_MODEL) for m in models],
            batch_size=2000,
        )
        rows = (
            ModelVersion(
                model=m,
                number=n,
                branch=b,
                digest=f"sha256:{i:032x}{n:032x}",
                stage=stages[n % len(stages)],
                lock_level="open",
                metrics={"auc": 0.8 + n / 100},
                created_by=cast.alice,
            )
            for i, (m, b) in enumerate(zip(models, branches, strict=True))
            for n in range(1, VERSIONS_PER_MODEL + 1)
        )
        _bulk(ModelVersion, rows)
        main = Branch.objects.get(model=big, name=Branch.MAIN)
        sequence = VersionSequence.objects.select_for_update().get(model=big)
        start = sequence.last_number
        _bulk(
            ModelVersion,
            (
                ModelVersion(
                    model=big,
                    number=start + n,
                    branch=main,
                    digest=f"sha256:{n:064x}",
                    stage=stages[n % len(stages)],
                    lock_level="open",
                    params={"lr": 0.01},
                    metrics={"auc": 0.8, "loss": 0.2},
                    created_by=cast.alice,
                )
                for n in range(1, BIG_MODEL_VERSIONS + 1)
            ),
        )
        sequence.last_number = start + BIG_MODEL_VERSIONS
        sequence.save(update_fields=["last_number"])
    return big, sequence.last_number


def _bulk(model, rows, size: int = 5000) -> None:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            model.objects.bulk_create(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)


def _measure(client, url: str) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries = [], set()
    for _ in range(REQUESTS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        queries.add(len(captured))
    p50 = statistics.median(times) * 1000
    return {
        "url": url,
        "requests": REQUESTS,
        "p50_ms": round(p50, 2),
        "max_ms": round(max(times) * 1000, 2),
        "queries": sorted(queries),
        "target": f"p50 <= {TARGET_MS:.0f} ms",
        "met": p50 <= TARGET_MS,
    }


def run(results: dict) -> None:
    """Add the UI figures to `results` (name -> figure, with target and met)."""
    from django.conf import settings
    from django.test import Client, override_settings
    from django.urls import reverse

    from registry.demo import ensure_cast

    cast = ensure_cast(passwords=False)
    log(f"UI: seeding {MODELS:,} models x {VERSIONS_PER_MODEL}, one of {BIG_MODEL_VERSIONS:,}")
    started = time.perf_counter()
    big, latest = _seed(cast)
    log(f"  seeded in {time.perf_counter() - started:.1f} s")
    # The test client speaks plain HTTP to "testserver"; production settings would redirect.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.SECURE_SSL_REDIRECT = False
    # No collectstatic in a throwaway folder: plain static URLs, as in the tests.
    # Through override_settings, whose setting_changed signal resets the storages that
    # benchmarks run before this one may already have built from the manifest setting.
    override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
    client = Client()
    client.force_login(cast.alice)
    model_url = reverse("catalog:model", args=["acme", big.name])
    urls = {
        "ui_catalog": reverse("catalog:catalog", args=["acme"]),
        "ui_model_card": model_url,
        "ui_model_versions": f"{model_url}?tab=versions",
        "ui_version_page": reverse("catalog:version", args=["acme", big.name, latest]),
    }
    for name, url in urls.items():
        results[name] = _measure(client, url)
        figure = results[name]
        log(
            f"  {PAGES[name]}: p50 {figure['p50_ms']:.2f} ms, queries {figure['queries']}, "
            f"{'met' if figure['met'] else 'NOT met'}"
        )


def main() -> int:
    """Standalone: `python -m bench.ui` on a throwaway embedded database."""
    import shutil
    import tempfile
    from pathlib import Path

    from bench.run import configure

    var_dir = Path(tempfile.mkdtemp(prefix="modelvault-bench-ui-"))
    try:
        configure(var_dir)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        results: dict = {}
        run(results)
        for name, figure in results.items():
            print(name, figure)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
