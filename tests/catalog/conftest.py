"""Fixtures of the UI tests: versions built with the real services."""

import io

import pytest

from registry.services.versions import version_create


@pytest.fixture
def version(model, alice):
    return version_create(
        actor=alice,
        model=model,
        description="First cut",
        params={"lr": 0.01},
        metrics={"auc": 0.91},
        artifacts={"model.bin": io.BytesIO(b"weights")},
    )
