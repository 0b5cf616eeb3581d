"""Helpers for the approval tests: versions and stage changes built with the real services."""

import pytest

from approvals.services import request_approve, request_create
from registry.models import Branch, ModelVersion
from registry.services.versions import version_create


def move_to(version: ModelVersion, stage: str, *, requester, reviewer, **options) -> ModelVersion:
    """Request and approve a stage change (one approval required); the version, re-read."""
    request = request_create(actor=requester, version=version, to_stage=stage, **options)
    request_approve(actor=reviewer, request=request)
    version.refresh_from_db()
    return version


@pytest.fixture
def make_version(model, alice, bob):
    """A version of acme/fraud registered by alice, moved to `stage` (alice asks, bob
    approves) when one is given."""

    def make(stage: str | None = None, branch: str = Branch.MAIN, **fields) -> ModelVersion:
        version = version_create(actor=alice, model=model, branch=branch, **fields)
        if stage is not None:
            move_to(version, stage, requester=alice, reviewer=bob)
        return version

    return make


@pytest.fixture
def version(make_version) -> ModelVersion:
    return make_version()


@pytest.fixture
def experimental(model) -> Branch:
    # Branch services come later; an unprotected branch is all these tests need.
    return Branch.objects.create(model=model, name="exp", protected=False)
