"""A running MLflow server, read through its REST API with the standard library only (the
server does not depend on MLflow): registered models, their versions, where each version's
files are, and those files, listed and streamed through MLflow's artifact proxy
(`mlflow-artifacts`). The reader of `manage.py import_mlflow` (mlflow_api/importer.py).

Credentials, as MLflow's own client takes them: MLFLOW_TRACKING_TOKEN (sent as a bearer
token), else MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth).
"""

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
CHUNK = 1024 * 1024
# MLflow's bounds for one page of a search.
MODELS_PAGE = 1000
VERSIONS_PAGE = 10_000


class SourceError(Exception):
    """The MLflow server cannot be reached, or answered something other than MLflow's JSON.
    `partial`: raised after the import had started writing."""

    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class RemoteFile:
    """One file of a version: its path in the version, where the proxy serves it, its size."""

    path: str
    remote: str
    size: int | None


class MlflowServer:
    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(f"{url!r} is not an http:// or https:// URL of an MLflow server")
        self.url = url.strip().rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json", "User-Agent": "modelvault-import-mlflow"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user:
            pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    # -- transport --------------------------------------------------------------------------

    def _open(self, path: str, query: dict[str, Any] | None = None):
        address = self.url + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        try:
            return urlopen(Request(address, headers=self.headers), timeout=self.timeout)
        except HTTPError as exc:
            raise SourceError(
                f"{self.url} answered {exc.code} to {path}: {_message(exc)}"
            ) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"cannot reach the MLflow server at {self.url}: {reason}") from None

    def _json(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._open(path, query) as response:
            body = response.read()
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SourceError(
                f"{self.url}{path} did not answer MLflow's JSON: is {self.url} an MLflow server?"
            )
        return answer

    def _pages(self, path: str, key: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        token = None
        while True:
            answer = self._json(path, {**query, **({"page_token": token} if token else {})})
            rows.extend(answer.get(key) or [])
            token = answer.get("next_page_token")
            if not token:
                return rows

    # -- the registry -----------------------------------------------------------------------

    def registered_models(self) -> list[dict[str, Any]]:
        """Every registered model (with its tags and aliases), by name."""
        rows = self._pages(
            f"{API}/registered-models/search", "registered_models", {"max_results": MODELS_PAGE}
        )
        return sorted(rows, key=lambda row: row.get("name", ""))

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of the model `name`, oldest first."""
        quote_mark = "'" if "'" not in name else '"'
        query = {"filter": f"name={quote_mark}{name}{quote_mark}", "max_results": VERSIONS_PAGE}
        rows = self._pages(f"{API}/model-versions/search", "model_versions", query)
        return sorted(rows, key=lambda row: int(row["version"]))

    def download_uri(self, name: str, version: int) -> str:
        answer = self._json(
            f"{API}/model-versions/get-download-uri", {"name": name, "version": str(version)}
        )
        return answer.get("artifact_uri") or ""

    # -- files ------------------------------------------------------------------------------

    def proxy_path(self, uri: str) -> str | None:
        """Where MLflow's artifact proxy serves `uri` (a version's download URI), or None for
        files elsewhere (s3://, a path on the MLflow host...), which it does not serve."""
        parts = urlsplit(uri)
        if parts.scheme == "mlflow-artifacts":
            return parts.path.strip("/")
        if parts.scheme == "runs":  # runs:/<run_id>/<path in the run>
            run_id, _, inner = parts.path.strip("/").partition("/")
            run = self._json(f"{API}/runs/get", {"run_id": run_id}).get("run") or {}
            root = (run.get("info") or {}).get("artifact_uri") or ""
            return self._joined(root, inner)
        if parts.scheme == "models" and parts.path.strip("/").startswith("m-"):
            model_id = parts.path.strip("/").split("/")[0]  # an MLflow 3 logged model
            found = self._json(f"{API}/logged-models/{quote(model_id)}").get("model") or {}
            return self._joined((found.get("info") or {}).get("artifact_uri") or "", "")
        return None

    def _joined(self, root: str, inner: str) -> str | None:
        if urlsplit(root).scheme != "mlflow-artifacts":
            return None
        base = self.proxy_path(root)
        return "/".join(part for part in (base, inner.strip("/")) if part)

    def files(self, remote: str) -> list[RemoteFile]:
        """The files under `remote` (a folder, or one file), with their paths below it."""
        found: list[RemoteFile] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            where = "/".join(part for part in (remote, folder) if part)
            for entry in self._json(PROXY, {"path": where}).get("files") or []:
                path = "/".join(part for part in (folder, entry["path"]) if part)
                if entry.get("is_dir"):
                    folders.append(path)
                else:
                    size = entry.get("file_size")
                    found.append(RemoteFile(path, f"{remote}/{path}", _size(size)))
        if not found and remote:
            # An empty listing: the URI may name one file rather than a folder.
            name = remote.rsplit("/", 1)[-1]
            try:
                with self._open(f"{PROXY}/{quote(remote)}") as response:
                    length = response.headers.get("Content-Length")
                found.append(RemoteFile(name, remote, _size(length)))
            except SourceError:
                pass
        return sorted(found, key=lambda item: item.path)

    def stream(self, remote: str) -> Iterator[bytes]:
        """The bytes of one file, chunk by chunk (the request is made on the first read)."""
        with self._open(f"{PROXY}/{quote(remote)}") as response:
            while chunk := response.read(CHUNK):
                yield chunk


def _size(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _message(exc: HTTPError) -> str:
    try:
        body = exc.read(4096)
        answer = json.loads(body)
        return str(answer.get("message") or answer.get("error_code") or body[:200])
    except Exception:
        return exc.reason if isinstance(exc.reason, str) else "no MLflow error message"
