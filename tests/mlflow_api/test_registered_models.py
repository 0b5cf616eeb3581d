"""MLflow's client on registered models: create, read, rename, update, delete, search (filter,
order_by, pages), tags, aliases and latest versions, each landing through the registry's
services (activity events) and refused as Modelvault's rules say."""

import pytest
from mlflow.exceptions import MlflowException

from approvals.services import request_approve, request_create
from registry.models import ActivityEvent, Alias, RegisteredModel
from registry.services.aliases import alias_protect, alias_set
from registry.services.registered_models import model_update
from registry.services.versions import version_create


def _code(excinfo) -> str:
    return excinfo.value.error_code


def test_it_creates_reads_updates_renames_and_deletes_a_model(mlflow_as, cast):
    alice = mlflow_as("alice")
    created = alice.create_registered_model("churn", tags={"team": "risk"}, description="Churn")
    assert (created.name, created.description, created.tags) == ("churn", "Churn", {"team": "risk"})
    assert created.creation_timestamp > 0
    model = RegisteredModel.objects.get(org=cast.acme, name="churn")
    assert (model.owner, model.tags) == (cast.alice, {"team": "risk"})

    assert alice.update_registered_model("churn", description="Churn risk").description == (
        "Churn risk"
    )
    alice.rename_registered_model("churn", "churn-risk")
    assert alice.get_registered_model("churn-risk").description == "Churn risk"
    with pytest.raises(MlflowException) as excinfo:
        alice.get_registered_model("churn")
    assert _code(excinfo) == "RESOURCE_DOES_NOT_EXIST"

    alice.delete_registered_model("churn-risk")
    assert not RegisteredModel.objects.filter(org=cast.acme).exists()
    verbs = ActivityEvent.objects.filter(org=cast.acme, verb__startswith="model.")
    assert list(verbs.order_by("seq").values_list("verb", flat=True)) == [
        "model.created",
        "model.updated",
        "model.updated",
        "model.deleted",
    ]


def test_it_refuses_a_taken_name_as_mlflow_does(mlflow_as, model):
    alice = mlflow_as("alice")
    with pytest.raises(MlflowException) as excinfo:
        alice.create_registered_model("fraud")
    assert _code(excinfo) == "RESOURCE_ALREADY_EXISTS"
    alice.create_registered_model("fraud-2")
    with pytest.raises(MlflowException) as excinfo:
        alice.rename_registered_model("fraud-2", "fraud")
    assert _code(excinfo) == "RESOURCE_ALREADY_EXISTS"


def test_it_refuses_a_viewer_and_hides_the_model_from_an_outsider(mlflow_as, model):
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("carol").update_registered_model("fraud", description="mine now")
    assert _code(excinfo) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("carol").set_registered_model_tag("fraud", "k", "v")
    assert _code(excinfo) == "PERMISSION_DENIED"
    # mallory of globex, on acme's URL and on her own org's.
    for client in (mlflow_as("mallory"), mlflow_as("mallory", org="globex")):
        for call in (
            lambda c: c.get_registered_model("fraud"),
            lambda c: c.delete_registered_model("fraud"),
            lambda c: c.set_registered_model_tag("fraud", "k", "v"),
        ):
            with pytest.raises(MlflowException) as excinfo:
                call(client)
            assert _code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("mallory").create_registered_model("planted")
    assert _code(excinfo) == "RESOURCE_DOES_NOT_EXIST"
    assert RegisteredModel.objects.get(name="fraud").description == "Card fraud scoring"


def test_it_sets_and_deletes_model_tags(mlflow_as, model):
    alice = mlflow_as("alice")
    alice.set_registered_model_tag("fraud", "team", "risk")
    alice.set_registered_model_tag("fraud", "tier", "1")
    alice.delete_registered_model_tag("fraud", "tier")
    alice.delete_registered_model_tag("fraud", "never-set")  # as MLflow: nothing to do
    assert alice.get_registered_model("fraud").tags == {"team": "risk"}
    model.refresh_from_db()
    assert model.tags == {"team": "risk"}


def test_it_searches_models_with_mlflows_filters_order_and_pages(mlflow_as, model, cast):
    alice = mlflow_as("alice")
    for name, team in [("fraud-eu", "risk"), ("fraud-us", "risk"), ("churn", "growth")]:
        alice.create_registered_model(name, tags={"team": team})
    names = [m.name for m in alice.search_registered_models("name LIKE 'fraud%'")]
    assert names == ["fraud", "fraud-eu", "fraud-us"]
    found = alice.search_registered_models("tags.team = 'risk' and name != 'fraud-us'")
    assert [m.name for m in found] == ["fraud-eu"]
    assert [m.name for m in alice.search_registered_models("name ILIKE 'CHURN'")] == ["churn"]
    newest = alice.search_registered_models(order_by=["creation_timestamp DESC"], max_results=2)
    assert [m.name for m in newest] == ["churn", "fraud-us"]
    second = alice.search_registered_models(
        order_by=["creation_timestamp DESC"], max_results=2, page_token=newest.token
    )
    assert [m.name for m in second] == ["fraud-eu", "fraud"]
    assert not second.token  # MLflow's client shows the last page's token as ''
    # Another org's models are not there, whoever asks.
    assert [m.name for m in mlflow_as("mallory", org="globex").search_registered_models()] == []
    with pytest.raises(MlflowException) as excinfo:
        alice.search_registered_models("name = 'a' or name = 'b'")
    assert _code(excinfo) == "INVALID_PARAMETER_VALUE"
    assert "AND only" in excinfo.value.message


def test_it_reads_a_model_without_the_prompt_tag_as_not_a_prompt(mlflow_as, model, cast):
    """As MLflow's server: a model without `mlflow.prompt.is_prompt` is one whose tag is
    'false', whichever way the filter says it (on PostgreSQL too, where other tag
    equalities are answered by containment)."""
    from registry.services.registered_models import model_create

    alice = mlflow_as("alice")
    for name, word in [("prompt-1", "true"), ("tagged-no", "false")]:
        # MLflow's client refuses to register a prompt as a model: one imported, say.
        model_create(
            actor=cast.alice, org=cast.acme, name=name, tags={"mlflow.prompt.is_prompt": word}
        )
    not_prompts = ["fraud", "tagged-no"]
    said = {
        "tags.`mlflow.prompt.is_prompt` = 'false'": not_prompts,
        "tags.`mlflow.prompt.is_prompt` != 'true'": not_prompts,
        "tags.`mlflow.prompt.is_prompt` = 'true'": ["prompt-1"],
    }
    for text, names in said.items():
        assert sorted(m.name for m in alice.search_registered_models(text)) == names, text


def test_it_hides_a_private_model_from_search_and_reads(mlflow_as, model, cast):
    mlflow_as("admin").create_registered_model("secret")
    model_update(
        actor=cast.admin, model=RegisteredModel.objects.get(name="secret"), visibility="private"
    )
    secret = RegisteredModel.objects.get(name="secret")
    version = version_create(actor=cast.admin, model=secret)
    alias_set(actor=cast.admin, model=secret, name="champion", version=version)
    assert mlflow_as("admin").get_model_version_by_alias("secret", "champion").version == "1"
    carol = mlflow_as("carol")
    assert [m.name for m in carol.search_registered_models()] == ["fraud"]
    for read in (
        lambda: carol.get_registered_model("secret"),
        lambda: carol.get_model_version_by_alias("secret", "champion"),
        lambda: carol.get_latest_versions("secret"),
    ):
        with pytest.raises(MlflowException) as excinfo:
            read()
        assert _code(excinfo) == "RESOURCE_DOES_NOT_EXIST"


def test_it_sets_reads_and_deletes_aliases(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    version_create(actor=cast.alice, model=model)
    alice = mlflow_as("alice")
    alice.set_registered_model_alias("fraud", "champion", "1")
    alice.set_registered_model_alias("fraud", "champion", 2)
    found = alice.get_model_version_by_alias("fraud", "champion")
    assert (found.version, found.aliases) == ("2", ["champion"])
    assert alice.get_registered_model("fraud").aliases == {"champion": "2"}
    alice.delete_registered_model_alias("fraud", "champion")
    assert not Alias.objects.exists()
    verbs = ActivityEvent.objects.filter(verb__startswith="alias.").order_by("seq")
    assert list(verbs.values_list("verb", flat=True)) == [
        "alias.set",
        "alias.moved",
        "alias.removed",
    ]
    with pytest.raises(MlflowException) as excinfo:
        alice.get_model_version_by_alias("fraud", "champion")
    assert _code(excinfo) == "RESOURCE_DOES_NOT_EXIST"


def test_it_refuses_to_move_a_protected_alias_for_a_writer(mlflow_as, model, cast):
    version_create(actor=cast.alice, model=model)
    version_create(actor=cast.alice, model=model)
    mlflow_as("admin").set_registered_model_alias("fraud", "prod", "1")
    alias_protect(actor=cast.admin, model=model, name="prod")
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("alice").set_registered_model_alias("fraud", "prod", "2")
    assert _code(excinfo) == "PERMISSION_DENIED"
    assert "protected" in excinfo.value.message
    with pytest.raises(MlflowException) as excinfo:
        mlflow_as("carol").set_registered_model_alias("fraud", "other", "2")
    assert _code(excinfo) == "PERMISSION_DENIED"
    assert Alias.objects.get(name="prod").version.number == 1


def test_it_answers_the_latest_version_of_each_stage(mlflow_as, model, cast):
    first = version_create(actor=cast.alice, model=model)
    for _ in range(2):
        version_create(actor=cast.alice, model=model)
    request = request_create(actor=cast.alice, version=first, to_stage="production")
    request_approve(actor=cast.bob, request=request)
    alice = mlflow_as("alice")
    latest = alice.get_latest_versions("fraud")
    assert sorted((v.version, v.current_stage) for v in latest) == [
        ("1", "Production"),
        ("3", "None"),
    ]
    assert [v.version for v in alice.get_latest_versions("fraud", stages=["production"])] == ["1"]
    assert alice.get_latest_versions("fraud", stages=["Staging"]) == []
    listed = alice.get_registered_model("fraud").latest_versions
    assert sorted(v.version for v in listed) == ["1", "3"]
    with pytest.raises(MlflowException) as excinfo:
        alice.get_latest_versions("fraud", stages=["Live"])
    assert _code(excinfo) == "INVALID_PARAMETER_VALUE"
