"""Tags set at the same instant through MLflow's client all land: each tag change reads,
changes and saves the tags with the row locked from the read on (PostgreSQL's real parallel
connections; the live server answers each request on a thread of its own)."""

import threading

import pytest

from registry.models import ModelVersion, RegisteredModel
from registry.services.versions import version_create

pytestmark = pytest.mark.postgres

RACERS = 8


def _race(work) -> list[BaseException]:
    barrier = threading.Barrier(RACERS)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_it_keeps_every_tag_set_at_the_same_instant(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    alice = mlflow_as("alice")
    alice.get_registered_model("fraud")  # the token set for every thread below
    assert _race(lambda i: alice.client.set_model_version_tag("fraud", "1", f"k{i}", "v")) == []
    assert _race(lambda i: alice.client.set_registered_model_tag("fraud", f"k{i}", "v")) == []
    expected = {f"k{i}": "v" for i in range(RACERS)}
    assert ModelVersion.objects.get(model=model, number=1).tags == expected
    assert RegisteredModel.objects.get(pk=model.pk).tags == expected
