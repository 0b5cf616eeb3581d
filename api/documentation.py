"""The technical documentation of a version (SPEC 3.10) as JSON (the document itself),
Markdown or a standalone printable HTML page: the same document the web UI shows."""

from typing import Literal

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from ninja import Router

from api import schemas as s
from compliance import (
    filename,
    render_json,
    render_markdown,
    technical_documentation,
)
from registry.permissions import get_version_for_user

router = Router(tags=["documentation"])
E = s.ERRORS
DOCUMENTATION = "/orgs/{org}/models/{model}/versions/{number}/documentation"
FORMATS = {
    "json": {"application/json": {"schema": {"type": "object"}}},
    "md": {"text/markdown": {"schema": {"type": "string"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
}


@router.get(
    DOCUMENTATION,
    response={200: None, **E},
    openapi_extra={
        "responses": {
            200: {
                "description": "The Annex IV document: JSON, Markdown or printable HTML",
                "content": {k: v for media in FORMATS.values() for k, v in media.items()},
            }
        }
    },
)
def get_documentation(
    request: HttpRequest,
    org: str,
    model: str,
    number: s.Number,
    format: Literal["json", "md", "html"] = "json",
):
    version = get_version_for_user(request.auth, org, model, number)
    doc = technical_documentation(version, viewer=request.auth)
    if format == "html":
        body = render_to_string(
            "catalog/documentation_standalone.html", {"doc": doc}, request=request
        )
        return HttpResponse(body, content_type="text/html; charset=utf-8")
    if format == "md":
        response = HttpResponse(render_markdown(doc), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename(doc, "md")}"'
        return response
    return HttpResponse(render_json(doc), content_type="application/json")
