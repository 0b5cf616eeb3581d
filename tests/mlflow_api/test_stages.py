"""transition_model_version_stage opens a Modelvault stage request, never a direct change:
the answer shows the version in its current stage with the pending request among its tags,
and the stage moves when a reviewer approves in Modelvault."""

import pytest
import requests
from mlflow.exceptions import MlflowException

from approvals.models import RequestStatus, StageChangeRequest
from approvals.services import request_approve, request_create
from registry.models import ActivityEvent, ModelVersion
from registry.services.versions import version_create


def test_it_opens_a_request_that_a_reviewer_approves_in_modelvault(
    mlflow_as, model, cast, live_server, tokens
):
    version_create(actor=cast.alice, model=model)
    alice = mlflow_as("alice")
    answer = alice.transition_model_version_stage("fraud", "1", "Staging")
    request = StageChangeRequest.objects.get()
    assert answer.current_stage == "None"
    assert answer.tags["modelvault.pending_request"] == str(request.pk)
    assert answer.tags["modelvault.pending_stage"] == "Staging"
    assert (request.requester, request.from_stage, request.to_stage, request.status) == (
        cast.alice,
        "unassigned",
        "staging",
        RequestStatus.PENDING,
    )
    assert ActivityEvent.objects.filter(verb="stage.requested", actor_name="alice").exists()
    assert ModelVersion.objects.get(number=1).stage == "unassigned"

    # bob reviews it through Modelvault's REST API.
    response = requests.post(
        f"{live_server.url}/api/v1/stage-requests/{request.pk}/approve",
        json={"comment": "looks good"},
        headers={"Authorization": f"Bearer {tokens['bob']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    after = alice.get_model_version("fraud", "1")
    assert after.current_stage == "Staging"
    assert "modelvault.pending_request" not in after.tags
    assert [v.version for v in alice.get_latest_versions("fraud", stages=["Staging"])] == ["1"]


def test_it_archives_the_production_versions_when_asked(mlflow_as, model, cast):
    first = version_create(actor=cast.alice, model=model)
    version_create(actor=cast.alice, model=model)
    request_approve(
        actor=cast.bob,
        request=request_create(actor=cast.alice, version=first, to_stage="production"),
    )
    alice = mlflow_as("alice")
    alice.transition_model_version_stage("fraud", "2", "production", archive_existing_versions=True)
    request = StageChangeRequest.objects.get(status=RequestStatus.PENDING)
    assert request.archive_existing
    request_approve(actor=cast.bob, request=request)
    stages = {v.version: v.current_stage for v in alice.search_model_versions("name='fraud'")}
    assert stages == {"2": "Production", "1": "Archived"}


def test_it_maps_every_mlflow_stage_name(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    alice = mlflow_as("alice")
    for mlflow_stage, ours in [
        ("Staging", "staging"),
        ("PRODUCTION", "production"),
        ("Archived", "archived"),
        ("Development", "development"),
        ("None", "unassigned"),
    ]:
        alice.transition_model_version_stage("fraud", "1", mlflow_stage)
        request = StageChangeRequest.objects.get(status=RequestStatus.PENDING)
        assert request.to_stage == ours
        request_approve(actor=cast.bob, request=request)
        assert alice.get_model_version("fraud", "1").current_stage == mlflow_stage.title()


def test_it_refuses_transitions_as_modelvault_does(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    alice = mlflow_as("alice")
    refusals = [
        (
            lambda: alice.transition_model_version_stage("fraud", "1", "Live"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda: alice.transition_model_version_stage(
                "fraud", "1", "Staging", archive_existing_versions=True
            ),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda: alice.transition_model_version_stage("fraud", "1", "None"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda: mlflow_as("carol").transition_model_version_stage("fraud", "1", "Staging"),
            "PERMISSION_DENIED",
        ),
        (
            lambda: mlflow_as("mallory").transition_model_version_stage("fraud", "1", "Staging"),
            "RESOURCE_DOES_NOT_EXIST",
        ),
    ]
    for call, code in refusals:
        with pytest.raises(MlflowException) as excinfo:
            call()
        assert excinfo.value.error_code == code
    assert not StageChangeRequest.objects.exists()
    alice.transition_model_version_stage("fraud", "1", "Staging")
    with pytest.raises(MlflowException) as excinfo:
        alice.transition_model_version_stage("fraud", "1", "Production")
    assert excinfo.value.error_code == "INVALID_STATE"
    assert "already has a pending request" in excinfo.value.message
    assert StageChangeRequest.objects.count() == 1
