"""`model.comments` and `version.comments`: the discussion of a model or of one version.

model.comments.add("Retrain monthly?")
[c["body"] for c in version.comments.list()]
"""

from typing import Any, Protocol


class _Commented(Protocol):
    client: Any
    path: str


class Comments:
    def __init__(self, owner: _Commented):
        self.owner = owner

    def list(self) -> list[dict[str, Any]]:
        """The comments, oldest first: `{id, model, version, author, body, created_at}`."""
        return list(self.owner.client.paginate(f"{self.owner.path}/comments"))

    def add(self, body: str) -> dict[str, Any]:
        """Comment (anyone who may view the model, at any lock level)."""
        return self.owner.client.json("POST", f"{self.owner.path}/comments", json={"body": body})

    def __iter__(self):
        return iter(self.list())
