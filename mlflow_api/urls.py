"""MLflow's registry REST API (model_registry.proto, ModelRegistryService) and artifact
proxy (mlflow_artifacts.proto), under /mlflow/<org>/: MLFLOW_TRACKING_URI is
http://host/mlflow/<org>. Endpoints and methods are MLflow's own; anything else answers
ENDPOINT_NOT_FOUND in MLflow's JSON."""

from django.urls import path, re_path

from mlflow_api import artifacts, model_versions, registered_models
from mlflow_api.views import endpoint, not_found

app_name = "mlflow_api"

REGISTRY = "<str:org>/api/2.0/mlflow/"
ARTIFACTS = "<str:org>/api/2.0/mlflow-artifacts/artifacts"
rm, mv = registered_models, model_versions

urlpatterns = [
    path(REGISTRY + "registered-models/create", endpoint({"POST": rm.create})),
    path(REGISTRY + "registered-models/get", endpoint({"GET": rm.get})),
    path(REGISTRY + "registered-models/rename", endpoint({"POST": rm.rename})),
    path(REGISTRY + "registered-models/update", endpoint({"PATCH": rm.update})),
    path(REGISTRY + "registered-models/delete", endpoint({"DELETE": rm.delete})),
    path(REGISTRY + "registered-models/search", endpoint({"GET": rm.search})),
    path(
        REGISTRY + "registered-models/get-latest-versions",
        endpoint({"POST": rm.latest_versions, "GET": rm.latest_versions}, reads=True),
    ),
    path(REGISTRY + "registered-models/set-tag", endpoint({"POST": rm.set_tag})),
    path(REGISTRY + "registered-models/delete-tag", endpoint({"DELETE": rm.delete_tag})),
    path(
        REGISTRY + "registered-models/alias",
        endpoint({"POST": rm.set_alias, "GET": rm.get_alias, "DELETE": rm.delete_alias}),
    ),
    path(REGISTRY + "model-versions/create", endpoint({"POST": mv.create})),
    path(REGISTRY + "model-versions/get", endpoint({"GET": mv.get})),
    path(REGISTRY + "model-versions/update", endpoint({"PATCH": mv.update})),
    path(REGISTRY + "model-versions/delete", endpoint({"DELETE": mv.delete})),
    path(REGISTRY + "model-versions/search", endpoint({"GET": mv.search})),
    path(REGISTRY + "model-versions/get-download-uri", endpoint({"GET": mv.download_uri})),
    path(REGISTRY + "model-versions/set-tag", endpoint({"POST": mv.set_tag})),
    path(REGISTRY + "model-versions/delete-tag", endpoint({"DELETE": mv.delete_tag})),
    path(REGISTRY + "model-versions/transition-stage", endpoint({"POST": mv.transition_stage})),
    path(
        ARTIFACTS,
        endpoint({"GET": artifacts.list_artifacts}, refusal=artifacts.REFUSAL),
    ),
    path(
        ARTIFACTS + "/<path:path>",
        endpoint({"GET": artifacts.download}, refusal=artifacts.REFUSAL),
    ),
    re_path(r"^", not_found),
]
