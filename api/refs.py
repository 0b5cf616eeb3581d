"""`model@alias` in the API's paths (SPEC 2: an alias resolves wherever a version is named).

`GET .../versions/@champion` answers the version the alias points at now, as
`GET .../versions/{number}` does. Any other path under it (`.../versions/@champion/artifacts/
model.pkl`, `.../@champion/stage-requests`, ...) is answered with 307 Temporary Redirect to the
same path under the version's number, method and body kept: the alias is resolved once, with
the caller's permissions (404 unless they may view the model), and what follows acts on the
version it named then. This router goes before the others, whose `{number}` would take
`@champion` for a malformed number.
"""

from urllib.parse import quote

from django.http import HttpRequest, HttpResponseRedirect
from ninja import Router

from api import schemas as s
from api.render import version_read_json
from registry.permissions import get_version_by_ref

router = Router(tags=["models"])
E = s.ERRORS
BY_ALIAS = "/orgs/{org}/models/{model}/versions/@{alias}"


@router.get(BY_ALIAS, response={200: s.VersionOut, **E})
def get_version_by_alias(request: HttpRequest, org: str, model: str, alias: str):
    return version_read_json(request.auth, org, model, alias=alias)


@router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"],
    BY_ALIAS + "/{path:rest}",
    response={307: None, **E},
    openapi_extra={"responses": {307: {"description": "the same path under the version's number"}}},
)
def redirect_by_alias(request: HttpRequest, org: str, model: str, alias: str, rest: str):
    version = get_version_by_ref(request.auth, org, f"{model}@{alias}")
    # The path as asked, up to `versions/` (org slugs and model names hold no `@`).
    base = request.path[: request.path.index("/versions/@") + len("/versions/")]
    url = f"{quote(base)}{version.number}/{quote(rest, safe='/')}"
    if request.META.get("QUERY_STRING"):
        url += "?" + request.META["QUERY_STRING"]
    return HttpResponseRedirect(url, status=307)
