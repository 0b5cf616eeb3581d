"""The Modelvault client: registered models, versions, artifacts and stage requests over the
REST API of SPEC 4.2.

    client = Client("http://127.0.0.1:8000", token="...", org="acme")
    model = client.create_registered_model("fraud", description="Card fraud scoring")
    version = model.create_version(Redact(), label="1.0.0", artifacts={"model.pkl": "out/m.pkl"})
    request = version.change_stage(Staging("Undergoing final testing."))
    champion = client.get_version("fraud@champion")
"""

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from modelvault import activity, transfer
from modelvault.comments import Comments
from modelvault.errors import ModelvaultError, check
from modelvault.grants import Grants
from modelvault.lock import LockLevel, lock_word
from modelvault.stage_change import StageChange
from modelvault.transfer import DOWNLOAD_ATTEMPTS, Progress

API_PREFIX = "/api/v1"


def _q(segment: str | int) -> str:
    return quote(str(segment), safe="")


class Client:
    """A session with one Modelvault server, for one organization.

    `url`, `token` and `org` fall back to MODELVAULT_URL, MODELVAULT_TOKEN and
    MODELVAULT_ORG. `transport` lets tests hand in an httpx transport.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        org: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        url = url or os.environ.get("MODELVAULT_URL")
        if not url:
            raise ModelvaultError("no server: pass url= or set MODELVAULT_URL")
        token = token or os.environ.get("MODELVAULT_TOKEN")
        self.org = org or os.environ.get("MODELVAULT_ORG")
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "modelvault-client/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r}, org={self.org!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- HTTP ------------------------------------------------------------------------------

    def _org_path(self) -> str:
        if not self.org:
            raise ModelvaultError("no organization: pass org= or set MODELVAULT_ORG")
        return f"/orgs/{_q(self.org)}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; a refusal raises the typed error carrying the server's message."""
        response = self._http.request(method, path.lstrip("/"), **kwargs)
        check(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ModelvaultError(
                f"the server answered {method} {path} with something that is not JSON"
            ) from None

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list, following `next` cursors."""
        params = dict(params or {})
        while True:
            page = self.json("GET", path, params=params)
            yield from page.get("items", [])
            cursor = page.get("next")
            if not cursor:
                return
            params["cursor"] = cursor

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any):
        with self.stream_unchecked(method, path, **kwargs) as response:
            if not response.is_success:
                response.read()
                check(response)
            yield response

    def stream_unchecked(self, method: str, path: str, **kwargs: Any):
        """The streamed response as the server sent it, a redirect or a refusal too."""
        return self._http.stream(method, path.lstrip("/"), **kwargs)

    @property
    def user_agent(self) -> str:
        return self._http.headers["User-Agent"]

    @property
    def timeout(self) -> httpx.Timeout:
        return self._http.timeout

    # --- models ----------------------------------------------------------------------------

    def create_registered_model(
        self, name: str | None = None, description: str = "", **fields: Any
    ) -> "RegisteredModel":
        """Register a model; without a name, one like `model-1a2b3c4d` is made."""
        name = name or f"model-{secrets.token_hex(4)}"
        body = {"name": name, "description": description, **fields}
        data = self.json("POST", f"{self._org_path()}/models", json=body)
        return RegisteredModel(self, data)

    def get_registered_model(self, name: str) -> "RegisteredModel":
        return RegisteredModel(self, self.json("GET", f"{self._org_path()}/models/{_q(name)}"))

    def list_registered_models(
        self, query: str | None = None, *, stage: str | None = None
    ) -> list["RegisteredModel"]:
        """The models you may view, by name; `query` keeps those with a version matching it,
        `stage` those with a version in that stage."""
        params = {k: v for k, v in (("q", query), ("stage", stage)) if v}
        return [
            RegisteredModel(self, d) for d in self.paginate(f"{self._org_path()}/models", params)
        ]

    def search_versions(self, query: str) -> list["ModelVersion"]:
        """Versions of any model of the org matching `query` (docs/query-language.md)."""
        found = self.paginate(f"{self._org_path()}/versions", {"q": query})
        return [ModelVersion(self, d) for d in found]

    def get_version(self, ref: str, number: int | None = None) -> "ModelVersion":
        """A version named as `"model@alias"` (the version the alias points at now) or as a
        model and its number: `get_version("fraud@champion")`, `get_version("fraud", 3)`."""
        name, at, alias = ref.partition("@")
        if at and number is not None:
            raise ModelvaultError("name a version by an alias or by a number, not both")
        if not at and number is None:
            raise ModelvaultError(f"name a version as {ref}@<alias>, or give its number")
        which = f"@{_q(alias)}" if at else _q(int(number))
        path = f"{self._org_path()}/models/{_q(name)}/versions/{which}"
        return ModelVersion(self, self.json("GET", path))

    def find_by_digest(self, digest: str) -> list["ModelVersion"]:
        """The versions you may view whose digest is `digest` (`sha256:...`, or its hex):
        identical ingredients share one, across models and organizations."""
        found = self.paginate(f"/versions/by-digest/{_q(digest)}")
        return [ModelVersion(self, d) for d in found]

    def activity(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """The org's events you may view, in chain order; filters: model, version, since,
        until (ISO 8601 with a zone), after (a seq or a time)."""
        return activity.events(self, **filters)

    def export_activity(
        self, dest: str | os.PathLike = ".", *, format: str = "jsonl", **filters: Any
    ) -> Path:
        """Download the verifiable export (jsonl or csv) to `dest`, a file or a directory;
        filters: model, version, since, until."""
        return activity.export(self, dest, format=format, **filters)

    def get_stage_request(self, request_id: int) -> "StageRequest":
        return StageRequest(self, self.json("GET", f"/stage-requests/{_q(request_id)}"))

    def pending_approvals(self) -> list["StageRequest"]:
        """The pending requests of this org that the caller may review."""
        found = self.paginate(f"{self._org_path()}/approvals/pending")
        return [StageRequest(self, d) for d in found]


class Resource:
    """An object the server describes in JSON: its fields read as attributes
    (label, digest, params, metrics, status, ...)."""

    def __init__(self, client: Client, data: dict[str, Any]):
        self.client = client
        self.data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None


class RegisteredModel(Resource):
    def __init__(self, client: Client, data: dict[str, Any]):
        super().__init__(client, data)
        self.versions = Versions(self)

    def __repr__(self) -> str:
        return f"RegisteredModel({self.name!r})"

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def path(self) -> str:
        return f"{self.client._org_path()}/models/{_q(self.name)}"

    def refresh(self) -> "RegisteredModel":
        self.data = self.client.json("GET", self.path)
        return self

    @property
    def grants(self) -> Grants:
        """Who may view, write and approve it: `.list()`, `.add(...)`, `.remove(...)`."""
        return Grants(self)

    @property
    def comments(self) -> Comments:
        return Comments(self)

    def compare(self, *numbers: int) -> dict[str, Any]:
        """2 to 5 versions side by side (`model.compare(1, 3)`; none: the latest two):
        `{versions, sections: {params: [{key, values, differs}], ...}, metrics}`."""
        params = {"v": [int(n) for n in numbers]} if numbers else None
        return self.client.json("GET", f"{self.path}/compare", params=params)

    def trend(self, metric: str | None = None, *, last: int | None = None) -> dict[str, Any]:
        """A numeric metric across the latest `last` versions (30 by default), oldest first:
        `{metric, metrics, points: [{version, value}]}`."""
        params = {k: v for k, v in (("metric", metric), ("last", last)) if v is not None}
        return self.client.json("GET", f"{self.path}/trend", params=params)

    def create_version(
        self,
        lock_level: LockLevel | type[LockLevel] | str | None = None,
        *,
        label: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        artifacts: dict[str, str | os.PathLike] | None = None,
        progress: Progress | None = None,
        **fields: Any,
    ) -> "ModelVersion":
        """Register a version, then upload `artifacts` ({path in the version: local file}).

        With artifacts and a lock level, the version is registered at the org's default
        level, the files uploaded, and only then the level raised: a redact or closed
        version refuses new artifacts. Other fields (tags, description, framework, flavor,
        environment, datasets, code_version, branch, ...) pass through as the API names them;
        `parents` takes ModelVersion objects, "model@alias" and {"model", "number"}.
        """
        body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if "parents" in body:
            body["parents"] = [_parent_ref(parent) for parent in body["parents"]]
        for key, value in (("label", label), ("params", params), ("metrics", metrics)):
            if value is not None:
                body[key] = value
        level = lock_word(lock_level) if lock_level is not None else None
        if level is not None and not artifacts:
            body["lock_level"] = level
        data = self.client.json("POST", f"{self.path}/versions", json=body)
        version = ModelVersion(self.client, data)
        for path, local in (artifacts or {}).items():
            version.upload_artifact(path, local, progress=progress)
        if level is not None and artifacts:
            version.set_lock_level(level)
        elif artifacts:
            version.refresh()
        return version

    def get_version(self, number: int | str) -> "ModelVersion":
        """By number (`3`), or by alias (`"champion"` or `"@champion"`): the version the
        alias points at now."""
        if isinstance(number, str) and not number.isdigit():
            which = f"@{_q(number.removeprefix('@'))}"
        else:
            which = _q(int(number))
        return ModelVersion(self.client, self.client.json("GET", f"{self.path}/versions/{which}"))

    def aliases(self) -> list[dict[str, Any]]:
        """The model's aliases: `[{"name": "champion", "version": 3, "protected": True}]`."""
        return self.client.json("GET", f"{self.path}/aliases")

    def set_alias(
        self, name: str, version: "int | ModelVersion", comment: str = ""
    ) -> dict[str, Any]:
        """Point alias `name` at a version (write permission). A protected alias moves only
        by an org admin: others get PermissionDenied and use request_alias."""
        body = {"version": _number(version), "comment": comment}
        return self.client.json("PUT", f"{self.path}/aliases/{_q(name)}", json=body)

    def remove_alias(self, name: str) -> None:
        """Remove alias `name` (write permission; a protected one: an org admin)."""
        self.client.json("DELETE", f"{self.path}/aliases/{_q(name)}")

    def request_alias(
        self, name: str, version: "int | ModelVersion | None", comment: str = ""
    ) -> "StageRequest":
        """Ask reviewers to point alias `name` at a version (None: to remove it), the way a
        writer moves a protected alias. Returns the pending request (approve, reject, cancel
        it like a stage request)."""
        body = {"version": None if version is None else _number(version), "comment": comment}
        path = f"{self.path}/aliases/{_q(name)}/requests"
        return StageRequest(self.client, self.client.json("POST", path, json=body))

    def branches(self) -> list[dict[str, Any]]:
        """The model's branches (`main` first exists and is protected)."""
        return list(self.client.paginate(f"{self.path}/branches"))

    def create_branch(self, name: str) -> dict[str, Any]:
        """Open an experimental branch; register versions on it with `branch=name`."""
        return self.client.json("POST", f"{self.path}/branches", json={"name": name})


def _number(version: "int | ModelVersion") -> int:
    return version.number if isinstance(version, ModelVersion) else int(version)


def _parent_ref(parent: Any) -> Any:
    """A parent for the API: a ModelVersion as {model, number}; "model@alias" and
    {"model", "number"} as they are."""
    if isinstance(parent, ModelVersion):
        return {"model": parent.model, "number": parent.number}
    return parent


class Versions:
    """`model.versions`: find, get and list a model's versions."""

    def __init__(self, model: RegisteredModel):
        self.model = model

    def find(self, query: str) -> list["ModelVersion"]:
        """The versions matching `query`, newest first (docs/query-language.md)."""
        found = self.model.client.paginate(f"{self.model.path}/versions", {"q": query})
        return [ModelVersion(self.model.client, d) for d in found]

    def list(self) -> list["ModelVersion"]:
        found = self.model.client.paginate(f"{self.model.path}/versions")
        return [ModelVersion(self.model.client, d) for d in found]

    def get(self, number: int | str) -> "ModelVersion":
        return self.model.get_version(number)

    def __iter__(self) -> Iterator["ModelVersion"]:
        return iter(self.list())


class ModelVersion(Resource):
    def __repr__(self) -> str:
        return f"ModelVersion({self.model!r}, {self.number})"

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def number(self) -> int:
        return self.data["number"]

    @property
    def path(self) -> str:
        return f"{self.client._org_path()}/models/{_q(self.model)}/versions/{self.number}"

    @property
    def stage(self) -> str:
        """The stage as the server holds it now (read on every access)."""
        return self.refresh().data["stage"]

    @property
    def lock_level(self) -> str:
        return self.data["lock_level"]

    @property
    def comments(self) -> Comments:
        return Comments(self)

    def refresh(self) -> "ModelVersion":
        self.data = self.client.json("GET", self.path)
        return self

    def set_lock_level(self, level: LockLevel | type[LockLevel] | str) -> "ModelVersion":
        self.data = self.client.json("PUT", f"{self.path}/lock", json={"level": lock_word(level)})
        return self

    def change_stage(self, change: StageChange, **options: Any) -> "StageRequest":
        """Request a stage change (reviewers approve it); returns the pending request."""
        if isinstance(change, type) and issubclass(change, StageChange):
            change = change()
        if not isinstance(change, StageChange):
            raise TypeError(
                "change_stage takes Development(), Staging(), Production() or Archived()"
            )
        body = {**change.payload(), **options}
        return StageRequest(
            self.client, self.client.json("POST", f"{self.path}/stage-requests", json=body)
        )

    def promote(
        self, *, label: str | None = None, description: str | None = None
    ) -> "ModelVersion":
        """Register this experimental version anew on `main` (its parent: this version; its
        artifacts: the same blobs, no bytes copied). Returns the new version."""
        body = {k: v for k, v in (("label", label), ("description", description)) if v is not None}
        return ModelVersion(
            self.client, self.client.json("POST", f"{self.path}/promote", json=body)
        )

    def lineage(self) -> dict[str, Any]:
        """Parents, children, branch, datasets and code version, as the caller may view them."""
        return self.client.json("GET", f"{self.path}/lineage")

    def flag(
        self,
        summary: str,
        *,
        severity: str = "medium",
        details: str = "",
        digest: str | None = None,
    ) -> "Flag":
        """Report that this version behaves unexpectedly (anyone who may view it). A monitor
        may cite the `digest` it observed; the server refuses it if it is not this version's."""
        body: dict[str, Any] = {"severity": severity, "summary": summary, "details": details}
        if digest is not None:
            body["digest"] = digest
        return Flag(self.client, self.client.json("POST", f"{self.path}/flags", json=body))

    def flags(self, status: str | None = None) -> list["Flag"]:
        """The version's flags, newest first; `status` is "open" or "resolved"."""
        found = self.client.paginate(f"{self.path}/flags", {"status": status} if status else {})
        return [Flag(self.client, d) for d in found]

    def documentation(self, format: str = "json") -> Any:
        """The technical documentation (EU AI Act Annex IV): a dict for "json", the text for
        "md" and "html"."""
        response = self.client.request(
            "GET", f"{self.path}/documentation", params={"format": format}
        )
        return response.json() if format == "json" else response.text

    def stage_requests(self) -> list["StageRequest"]:
        found = self.client.paginate(f"{self.path}/stage-requests")
        return [StageRequest(self.client, d) for d in found]

    def upload_artifact(
        self, path: str, local_file: str | os.PathLike, *, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Stream a local file to the artifact `path`, with its SHA-256 for the server to
        verify (read twice: once to hash, once to send)."""
        url = f"{self.path}/artifacts/{quote(path, safe='/')}"
        return transfer.upload(self.client, url, local_file, progress)

    def list_artifacts(self) -> list[dict[str, Any]]:
        """The artifacts as the server lists them now (`.artifacts` is as last read)."""
        return list(self.client.paginate(f"{self.path}/artifacts"))

    def download_artifact(
        self,
        path: str,
        dest_dir: str | os.PathLike = ".",
        *,
        progress: Progress | None = None,
        attempts: int = DOWNLOAD_ATTEMPTS,
    ) -> Path:
        """Stream the artifact to `dest_dir/path` and verify the whole file's SHA-256
        (modelvault.transfer.download: resumed with Range, redirects to an object store
        followed without the token)."""
        url = f"{self.path}/artifacts/{quote(path, safe='/')}"
        return transfer.download(self.client, url, path, dest_dir, progress, attempts)


class StageRequest(Resource):
    def __repr__(self) -> str:
        change = self.data.get("to_stage")
        if self.data.get("alias"):
            change = f"@{self.data['alias']}"
        return f"StageRequest({self.id}, {change!r}, {self.status!r})"

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    def _review(self, action: str, comment: str) -> "StageRequest":
        path = f"/stage-requests/{_q(self.id)}/{action}"
        self.data = self.client.json("POST", path, json={"comment": comment})
        return self

    def approve(self, comment: str = "") -> "StageRequest":
        return self._review("approve", comment)

    def reject(self, comment: str = "") -> "StageRequest":
        return self._review("reject", comment)

    def cancel(self, comment: str = "") -> "StageRequest":
        return self._review("cancel", comment)

    def refresh(self) -> "StageRequest":
        self.data = self.client.json("GET", f"/stage-requests/{_q(self.id)}")
        return self


class Flag(Resource):
    """A report on a version (`id`, `severity`, `summary`, `status`, `digest`, ...)."""

    def __repr__(self) -> str:
        return f"Flag({self.id}, {self.data.get('severity')!r}, {self.status!r})"

    def resolve(self, comment: str = "") -> "Flag":
        """Resolve the flag (write permission on its model)."""
        self.data = self.client.json(
            "POST", f"/flags/{_q(self.id)}/resolve", json={"comment": comment}
        )
        return self

    def refresh(self) -> "Flag":
        self.data = self.client.json("GET", f"/flags/{_q(self.id)}")
        return self
