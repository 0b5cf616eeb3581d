"""What MLflow's registry concepts are in Modelvault (docs/mlflow.md has the table).

- Stages: MLflow's None, Staging, Production and Archived are Modelvault's unassigned,
  staging, production and archived; Modelvault's development stage, which MLflow lacks,
  shows as Development.
- A version's `source` is its `source_run` (an ingredient: frozen by the lock, part of the
  digest, never dereferenced). `run_id`, `run_link` and MLflow 3's `model_id` are version
  tags under the RUN_TAGS keys, shown in their own MLflow fields rather than among the tags.
- COMPUTED_TAGS are shown among a version's tags but never stored: the lock level and the
  pending stage request that `transition-stage` opened.
"""

from registry.errors import Invalid
from registry.models import Stage

TO_MLFLOW_STAGE = {
    Stage.UNASSIGNED: "None",
    Stage.DEVELOPMENT: "Development",
    Stage.STAGING: "Staging",
    Stage.PRODUCTION: "Production",
    Stage.ARCHIVED: "Archived",
}
_FROM_MLFLOW_STAGE = {name.lower(): stage for stage, name in TO_MLFLOW_STAGE.items()}

# MLflow fields kept as version tags, by the field's name.
RUN_TAGS = {
    "run_id": "mlflow.run_id",
    "run_link": "mlflow.run_link",
    "model_id": "mlflow.model_id",
}
LOCK_LEVEL_TAG = "modelvault.lock_level"
PENDING_REQUEST_TAG = "modelvault.pending_request"
PENDING_STAGE_TAG = "modelvault.pending_stage"
COMPUTED_PREFIX = "modelvault."

# Where a version's stored artifacts are, for MLflow's artifact proxy: MLflow's client
# resolves `mlflow-artifacts:/<path>` against its tracking URI (http://host/mlflow/<org>) to
# http://host/mlflow/<org>/api/2.0/mlflow-artifacts/artifacts/<path>.
ARTIFACTS_SCHEME = "mlflow-artifacts:"


def stage_from_mlflow(name: str) -> str:
    """Modelvault's stage for an MLflow stage name (any case, as MLflow accepts them)."""
    stage = _FROM_MLFLOW_STAGE.get(name.strip().lower()) if isinstance(name, str) else None
    if stage is None:
        allowed = ", ".join(TO_MLFLOW_STAGE.values())
        raise Invalid(f"stage {name!r} is not one of {allowed}")
    return stage


def artifact_root(model_name: str, number: int) -> str:
    """The path of a version's artifacts under the artifact proxy's root."""
    return f"models/{model_name}/versions/{number}"


def artifact_uri(model_name: str, number: int) -> str:
    """Where MLflow's client finds a version's stored artifacts."""
    return f"{ARTIFACTS_SCHEME}/{artifact_root(model_name, number)}"


def refuse_reserved_tag(key: str) -> None:
    """Tags that hold MLflow fields, or that the server computes, are not set as tags."""
    if key in RUN_TAGS.values():
        field = next(f for f, tag in RUN_TAGS.items() if tag == key)
        raise Invalid(f"tag {key} holds the version's {field}: it is set when the version is made")
    if key.startswith(COMPUTED_PREFIX):
        raise Invalid(f"tags starting with {COMPUTED_PREFIX} are computed by Modelvault")
