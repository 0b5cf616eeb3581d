"""MLflow's client on model versions: register with source, run and tags, read, update,
delete, search with MLflow's filters and pages, tags and the download URI of an external
source (kept as metadata, never fetched)."""

import pytest
from mlflow.exceptions import MlflowException

from registry.models import ActivityEvent, ModelVersion
from registry.services.registered_models import model_create
from registry.services.versions import version_create


def test_it_registers_a_version_with_its_source_run_and_tags(mlflow_as, model, cast):
    alice = mlflow_as("alice")
    made = alice.create_model_version(
        "fraud",
        "s3://bucket/fraud/model",
        run_id="4f2a9c",
        tags={"team": "risk"},
        run_link="http://mlflow.example/#/runs/4f2a9c",
        description="gbm, 200 trees",
    )
    assert (made.version, made.status, made.current_stage) == ("1", "READY", "None")
    assert (made.source, made.run_id, made.run_link) == (
        "s3://bucket/fraud/model",
        "4f2a9c",
        "http://mlflow.example/#/runs/4f2a9c",
    )
    assert made.description == "gbm, 200 trees"
    assert made.tags == {"team": "risk", "modelvault.lock_level": "open"}
    assert made.user_id == "alice"
    stored = ModelVersion.objects.get(model=model, number=1)
    assert (stored.source_run, stored.lock_level, stored.branch.name) == (
        "s3://bucket/fraud/model",
        "open",
        "main",
    )
    assert stored.tags == {
        "team": "risk",
        "mlflow.run_id": "4f2a9c",
        "mlflow.run_link": "http://mlflow.example/#/runs/4f2a9c",
    }
    event = ActivityEvent.objects.get(verb="version.created")
    assert (event.actor_name, event.changes["number"]) == ("alice", [None, 1])
    # The server keeps the external source as it was given and hands it back: never fetched.
    assert alice.get_model_version_download_uri("fraud", "1") == "s3://bucket/fraud/model"
    assert alice.get_model_version("fraud", "1").source == "s3://bucket/fraud/model"


def test_it_updates_tags_and_deletes_a_version(mlflow_as, model, cast):
    alice = mlflow_as("alice")
    alice.create_model_version("fraud", "runs:/abc/model")
    assert alice.update_model_version("fraud", "1", description="retrained").description == (
        "retrained"
    )
    alice.set_model_version_tag("fraud", "1", "validated", "yes")
    alice.set_model_version_tag("fraud", "1", "owner", "risk")
    alice.delete_model_version_tag("fraud", "1", "owner")
    assert alice.get_model_version("fraud", "1").tags == {
        "validated": "yes",
        "modelvault.lock_level": "open",
    }
    for key in ("mlflow.run_id", "modelvault.lock_level"):
        with pytest.raises(MlflowException) as excinfo:
            alice.set_model_version_tag("fraud", "1", key, "forged")
        assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    alice.delete_model_version("fraud", "1")
    assert not ModelVersion.objects.exists()
    verbs = ActivityEvent.objects.filter(verb__startswith="version.").order_by("seq")
    assert list(verbs.values_list("verb", flat=True)) == [
        "version.created",
        "version.updated",
        "version.updated",
        "version.updated",
        "version.updated",
        "version.deleted",
    ]
    with pytest.raises(MlflowException) as excinfo:
        alice.get_model_version("fraud", "1")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_it_refuses_a_viewer_and_hides_versions_from_an_outsider(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    carol = mlflow_as("carol")
    assert carol.get_model_version("fraud", "1").version == "1"
    for call in (
        lambda c: c.create_model_version("fraud", "s3://x"),
        lambda c: c.update_model_version("fraud", "1", description="mine"),
        lambda c: c.set_model_version_tag("fraud", "1", "k", "v"),
        lambda c: c.delete_model_version("fraud", "1"),
    ):
        with pytest.raises(MlflowException) as excinfo:
            call(carol)
        assert excinfo.value.error_code == "PERMISSION_DENIED"
    mallory = mlflow_as("mallory")
    for call in (
        lambda c: c.get_model_version("fraud", "1"),
        lambda c: c.get_model_version_download_uri("fraud", "1"),
        lambda c: c.create_model_version("fraud", "s3://x"),
        lambda c: c.delete_model_version("fraud", "1"),
    ):
        with pytest.raises(MlflowException) as excinfo:
            call(mallory)
        assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as excinfo:
        mallory.search_model_versions("name='fraud'")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert list(mlflow_as("mallory", org="globex").search_model_versions("name='fraud'")) == []
    assert ModelVersion.objects.count() == 1


def test_it_searches_versions_by_name_and_tag_in_pages(mlflow_as, model, cast):
    for number in range(1, 8):
        tags = {"k": "v"} if number != 4 else {"k": "other"}
        version_create(actor=cast.alice, model=model, tags=tags)
    churn = model_create(actor=cast.admin, org=cast.acme, name="churn")
    version_create(actor=cast.admin, model=churn, tags={"k": "v"})
    alice = mlflow_as("alice")
    query = "name='fraud' and tags.k='v'"
    pages, token = [], None
    while True:
        found = alice.search_model_versions(query, max_results=2, page_token=token)
        pages.append([v.version for v in found])
        token = found.token
        if not token:
            break
    assert pages == [["7", "6"], ["5", "3"], ["2", "1"]]
    oldest = alice.search_model_versions(query, max_results=3, order_by=["version_number ASC"])
    assert [v.version for v in oldest] == ["1", "2", "3"]
    assert [v.version for v in alice.search_model_versions("tags.k != 'v'")] == ["4"]
    newer = alice.search_model_versions("name = 'fraud' and version_number >= 6")
    assert [v.version for v in newer] == ["7", "6"]
    both = alice.search_model_versions("name IN ('fraud', 'churn') and version_number = 1")
    assert [(v.name, v.version) for v in both] == [("churn", "1"), ("fraud", "1")]
    assert [v.name for v in alice.search_model_versions("name LIKE 'ch%'")] == ["churn"]


def test_it_searches_versions_by_run_id_and_source(mlflow_as, model):
    alice = mlflow_as("alice")
    alice.create_model_version("fraud", "s3://bucket/a", run_id="run-a")
    alice.create_model_version("fraud", "s3://bucket/b", run_id="run-b")
    assert [v.version for v in alice.search_model_versions("run_id = 'run-b'")] == ["2"]
    found = alice.search_model_versions("run_id IN ('run-a', 'run-b')")
    assert [v.version for v in found] == ["2", "1"]
    assert [v.version for v in alice.search_model_versions("source_path = 's3://bucket/a'")] == [
        "1"
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("name = 'a' or name = 'b'", "AND only"),
        ("stage = 'Production'", "invalid attribute key 'stage'"),
        ("tags.k > 'v'", "cannot be compared with >"),
        ("version_number = 'three'", "compared with a whole number"),
        ("version_number < 1.5", "compared with a whole number"),
        ("version_number > 99999999999999999999", "out of range"),
        ("name = ", "expected a value"),
        ("name = 'unterminated", "position"),
    ],
)
def test_it_names_what_is_wrong_in_a_filter(mlflow_as, model, query, message):
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("alice").search_model_versions(query)
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message in excinfo.value.message


def test_it_takes_mlflows_register_model_for_an_external_source(
    mlflow_as, model, tokens, monkeypatch
):
    import mlflow

    mlflow_as("alice")  # the tracking URI of acme, set for MLflow's fluent API
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["alice"])
    # The model exists: MLflow's register_model reads RESOURCE_ALREADY_EXISTS and goes on.
    first = mlflow.register_model("s3://bucket/fraud/7", "fraud")
    second = mlflow.register_model("s3://bucket/fraud/8", "fraud", tags={"k": "v"})
    assert (first.version, second.version) == ("1", "2")
    stored = ModelVersion.objects.get(model=model, number=2)
    assert (stored.source_run, stored.tags) == ("s3://bucket/fraud/8", {"k": "v"})


@pytest.mark.django_db
def test_it_answers_tag_equality_by_containment_on_postgresql(model, cast):
    """`tags.k = 'v'` is the GIN index's containment on PostgreSQL (registry migration 0006),
    and finds what the tag's text does everywhere."""
    from django.db import connection

    from mlflow_api.filters import filter_versions

    for tags in ({"k": "v"}, {"k": "v", "j": "w"}, {"k": "vv"}, {"k": "V"}, {"j": "v"}, {}):
        version_create(actor=cast.alice, model=model, tags=tags)
    found = filter_versions(ModelVersion.objects.all(), "tags.k = 'v'")
    by_text = [v.number for v in ModelVersion.objects.all() if v.tags.get("k") == "v"]
    assert sorted(v.number for v in found) == sorted(by_text) == [1, 2]
    assert ("@>" in str(found.query)) == (connection.vendor == "postgresql")
    both = filter_versions(ModelVersion.objects.all(), "tags.k = 'v' and tags.j = 'w'")
    assert [v.number for v in both] == [2]
