"""Modelvault's rules through MLflow's client: lock levels refuse with the lock named,
another org's models and private models do not exist for the caller, and no organization
sees into another's."""

import pytest
from mlflow.exceptions import MlflowException

from registry.models import ModelVersion, RegisteredModel, Visibility
from registry.services.aliases import alias_set
from registry.services.registered_models import model_create, model_update
from registry.services.versions import version_create


def _refused(call) -> MlflowException:
    with pytest.raises(MlflowException) as excinfo:
        call()
    return excinfo.value


def test_it_refuses_to_delete_a_closed_version_naming_the_lock(mlflow_as, model, cast):
    closed = version_create(actor=cast.alice, model=model, lock_level="closed", source_run="s3://x")
    for who in ("alice", "admin"):
        error = _refused(lambda who=who: mlflow_as(who).delete_model_version("fraud", "1"))
        assert error.error_code == "INVALID_STATE"
        assert "version 1 of fraud is closed" in error.message
    error = _refused(lambda: mlflow_as("admin").delete_registered_model("fraud"))
    assert error.error_code == "INVALID_STATE"
    assert "holds closed version 1" in error.message
    # Free metadata stays editable at every lock level (SPEC 3.2).
    alice = mlflow_as("alice")
    assert alice.update_model_version("fraud", "1", description="why").description == "why"
    alice.set_model_version_tag("fraud", "1", "reviewed", "yes")
    version = ModelVersion.objects.get(pk=closed.pk)
    assert (version.lock_level, version.digest, version.source_run) == (
        "closed",
        closed.digest,
        "s3://x",
    )
    assert alice.get_model_version("fraud", "1").tags["modelvault.lock_level"] == "closed"


def test_it_leaves_a_redacted_version_to_org_admins(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model, lock_level="redact")
    error = _refused(lambda: mlflow_as("alice").delete_model_version("fraud", "1"))
    assert error.error_code == "INVALID_STATE"
    assert "lock level redact" in error.message
    mlflow_as("admin").delete_model_version("fraud", "1")
    assert not ModelVersion.objects.filter(model=model).exists()


def test_it_keeps_each_org_to_itself(mlflow_as, model, cast):
    theirs = model_create(actor=cast.mallory, org=cast.globex, name="fraud", tags={"org": "g"})
    version_create(actor=cast.mallory, model=theirs, tags={"k": "v"})
    version_create(actor=cast.alice, model=model, tags={"k": "v"})
    mallory = mlflow_as("mallory", org="globex")
    assert mallory.get_registered_model("fraud").tags == {"org": "g"}
    assert [m.name for m in mallory.search_registered_models()] == ["fraud"]
    assert len(mallory.search_model_versions("tags.k = 'v'")) == 1
    mallory.set_registered_model_alias("fraud", "champion", "1")
    # Her alias and tag are globex's; acme's fraud is untouched, and the other way round.
    alice = mlflow_as("alice")
    assert alice.get_registered_model("fraud").aliases == {}
    assert alice.get_registered_model("fraud").tags == {}
    error = _refused(lambda: alice.get_model_version_by_alias("fraud", "champion"))
    assert error.error_code == "RESOURCE_DOES_NOT_EXIST"
    for call in (
        lambda: mlflow_as("alice", org="globex").get_registered_model("fraud"),
        lambda: mlflow_as("alice", org="globex").search_model_versions("name='fraud'"),
        lambda: mlflow_as("mallory").get_model_version("fraud", "1"),
        lambda: mlflow_as("mallory").get_latest_versions("fraud"),
        lambda: mlflow_as("mallory").get_model_version_download_uri("fraud", "1"),
    ):
        assert _refused(call).error_code == "RESOURCE_DOES_NOT_EXIST"
    assert RegisteredModel.objects.filter(name="fraud").count() == 2


def test_it_hides_a_private_model_from_a_member_not_granted(mlflow_as, model, cast, tmp_path):
    version = version_create(actor=cast.alice, model=model)
    alias_set(actor=cast.alice, model=model, name="champion", version=version)
    model_update(actor=cast.admin, model=model, visibility=Visibility.PRIVATE)
    carol = mlflow_as("carol")
    for call in (
        lambda: carol.get_registered_model("fraud"),
        lambda: carol.get_model_version("fraud", "1"),
        lambda: carol.get_model_version_by_alias("fraud", "champion"),
        lambda: carol.get_latest_versions("fraud"),
        lambda: carol.transition_model_version_stage("fraud", "1", "Staging"),
        lambda: carol.set_registered_model_tag("fraud", "k", "v"),
        lambda: carol.download("models:/fraud@champion", tmp_path),
    ):
        error = _refused(call)
        assert error.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert "fraud" in error.message
    assert list(carol.search_registered_models()) == []
    assert list(carol.search_model_versions("name = 'fraud'")) == []
    # alice holds her grants on it: she still sees it.
    assert mlflow_as("alice").get_registered_model("fraud").name == "fraud"


def test_a_read_only_token_reads_and_changes_nothing(live_server, monkeypatch, model, cast, tokens):
    """MLflow's client with a read-only token: every read answers (get-latest-versions
    included, which the client sends as a POST), every change is PERMISSION_DENIED."""
    from registry.models import TokenScope
    from registry.services.tokens import token_create
    from tests.mlflow_api.conftest import As

    version_create(actor=cast.alice, model=model)
    token = token_create(
        actor=cast.alice, user=cast.alice, name="ci", scope=TokenScope.READ, org=model.org
    )[1]
    reader = As(f"{live_server.url}/mlflow/acme", token, monkeypatch)
    assert reader.get_registered_model(model.name).name == model.name
    assert [v.version for v in reader.get_latest_versions(model.name)] == ["1"]
    assert reader.search_model_versions(f"name='{model.name}'")
    refused = _refused(lambda: reader.set_registered_model_tag(model.name, "k", "v"))
    assert refused.error_code == "PERMISSION_DENIED"
    refused = _refused(lambda: reader.create_registered_model("made-by-a-reader"))
    assert refused.error_code == "PERMISSION_DENIED"
    assert not RegisteredModel.objects.filter(name="made-by-a-reader").exists()
