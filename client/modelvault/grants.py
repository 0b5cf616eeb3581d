"""`model.grants`: who may view, write and approve a model (SPEC 3.1), kept in code.

    model.grants.list()  # [{"permission": "write", "user": "alice", "team": None}, ...]
    model.grants.add("approve", team="reviewers")
    model.grants.remove("write", user="carol")

Granting and revoking are for the model's owner and org admins (PermissionDenied
otherwise); listing needs write on the model.
"""

from typing import TYPE_CHECKING, Any

from modelvault.errors import ModelvaultError

if TYPE_CHECKING:
    from modelvault.client import RegisteredModel

PERMISSIONS = ("view", "write", "approve")


def _grantee(user: str | None, team: str | None) -> dict[str, str]:
    if (user is None) == (team is None):
        raise ModelvaultError("name exactly one of user= and team=")
    return {"user": user} if user is not None else {"team": team}


class Grants:
    def __init__(self, model: "RegisteredModel"):
        self.model = model

    @property
    def path(self) -> str:
        return f"{self.model.path}/grants"

    def list(self) -> list[dict[str, Any]]:
        """Every grant on the model, users first then teams."""
        return self.model.client.json("GET", self.path)["items"]

    def add(self, permission: str, *, user: str | None = None, team: str | None = None) -> dict:
        """Grant `permission` (view, write or approve) to a user or a team of the org."""
        body = {"permission": permission, **_grantee(user, team)}
        return self.model.client.json("POST", self.path, json=body)

    def remove(self, permission: str, *, user: str | None = None, team: str | None = None) -> None:
        """Take a grant back; NotFound when the user or team does not hold it."""
        params = {"permission": permission, **_grantee(user, team)}
        self.model.client.json("DELETE", self.path, params=params)

    def __iter__(self):
        return iter(self.list())
