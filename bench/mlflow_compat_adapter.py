"""The shared harness's MLflow adapter, pointed at Modelvault's MLflow-compatible API
(docs/mlflow.md): the same MLflow REST calls, sent to `/mlflow/<org>/api/2.0/mlflow/...`
with a Modelvault token, as MLflow's client sends MLFLOW_TRACKING_TOKEN
(`Authorization: Bearer`). bench/README.md says how a side-by-side run uses it.

    registry_bench.py --target mv-mlflow,ADAPTER,http://127.0.0.1:PORT/mlflow/acme,PID \\
        --opt mv-mlflow.tokens=RUN/mv-pg/tokens.json [--opt mv-mlflow.user=alice]

with ADAPTER = bench/mlflow_compat_adapter.py:MlflowCompatAdapter.

`tokens` is the file `manage.py seed_demo --tokens FILE` writes.
"""

import json
import sys


def _harness():
    """registry_bench: the running script when the harness loads this file, else the module
    (with the harness's folder on PYTHONPATH)."""
    main = sys.modules.get("__main__")
    if hasattr(main, "MlflowAdapter"):
        return main
    import registry_bench

    return registry_bench


MlflowAdapter = _harness().MlflowAdapter


class MlflowCompatAdapter(MlflowAdapter):
    kind = "mlflow-compat"

    def __init__(self, base_url, tokens=None, user="alice", **opts):
        super().__init__(base_url, **opts)
        if not tokens:
            raise SystemExit("MlflowCompatAdapter needs --opt LABEL.tokens=<seed_demo's file>")
        with open(tokens) as f:
            self.authorization = f"Bearer {json.load(f)[user]}"

    @property
    def session(self):
        session = super().session
        session.headers["Authorization"] = self.authorization
        return session

    def health(self):
        # MLflow's server answers /health; the prefix has no such page: a search stands in.
        r = self.session.get(
            self.api + "/registered-models/search", params={"max_results": 1}, timeout=10
        )
        return r.status_code == 200
