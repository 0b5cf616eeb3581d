"""The REST API (SPEC 4.2) under /api/v1, with its OpenAPI document at /api/v1/docs.

The API only parses, fetches with authorisation, calls one service and renders: every rule
lives in the domain layer. Failures become the error JSON in one place (errors.py); wrong
methods and unknown paths answer in that JSON too.
"""

import functools

from django.http import HttpResponseNotAllowed
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI

from api import activity, approvals, artifacts, catalog, errors, refs, search, throttle
from api import branches as branches_api
from api import compare as compare_api
from api import documentation as documentation_api
from api import flags as flags_api
from api import grants as grants_api
from api import orgs as orgs_api
from api import service_accounts as service_accounts_api
from api import webhooks as webhooks_api
from api.auth import AUTH
from api.renderer import FastJSONRenderer


def _guarded(view):
    """Answer a wrong method in the error JSON. (A URL no database can store never gets
    here: config.middleware answers it.)"""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = errors.error_response(
                405, f"{request.method} is not allowed here; allowed: {allowed}"
            )
            response["Allow"] = allowed
        return response

    return wrapper


@csrf_exempt
def unknown_path(request, rest: str = ""):
    return errors.error_response(404, f"no API endpoint at {request.path}")


class RegistryAPI(NinjaAPI):
    @property
    def urls(self):
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if hasattr(pattern, "callback"):
                pattern.callback = _guarded(pattern.callback)
        return [*patterns, re_path(r"^(?P<rest>.*)$", unknown_path)], app_name, namespace


api = RegistryAPI(
    title="Modelvault API",
    version="1",
    description='The model registry over HTTP. Errors: {"error": {code, message, details}}.',
    urls_namespace="api",
    docs_url="/docs",
    auth=AUTH,
    renderer=FastJSONRenderer(),
)
errors.install(api)
throttle.install(api)
# `.../versions/@alias` first: the routes below would read `@alias` as a malformed {number}.
api.add_router("", refs.router)
# Artifacts next: their {path:path} routes must not be shadowed by a shorter match.
api.add_router("", artifacts.router)
api.add_router("", catalog.router)
api.add_router("", approvals.router)
api.add_router("", search.router)
api.add_router("", activity.router)
api.add_router("", documentation_api.router)
api.add_router("", branches_api.router)
api.add_router("", flags_api.router)
api.add_router("", webhooks_api.router)
api.add_router("", orgs_api.router)
api.add_router("", service_accounts_api.router)
api.add_router("", grants_api.router)
api.add_router("", compare_api.router)
