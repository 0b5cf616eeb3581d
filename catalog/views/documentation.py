"""The technical documentation of a version (SPEC 3.10): a printable page, and the same
document as Markdown and JSON downloads (`?format=md`, `?format=json`)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog.errors import domain_errors
from compliance import (
    filename,
    render_json,
    render_markdown,
    technical_documentation,
)
from registry.permissions import get_version_for_user

DOWNLOADS = {
    "md": ("text/markdown; charset=utf-8", render_markdown),
    "json": ("application/json", render_json),
}


def download(doc: dict, extension: str) -> HttpResponse:
    """The document as an attachment, in the format of `extension` (md or json)."""
    content_type, render_as = DOWNLOADS[extension]
    response = HttpResponse(render_as(doc), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename(doc, extension)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
@domain_errors
def version_documentation(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number)
    fmt = request.GET.get("format", "html")
    if fmt not in ("html", *DOWNLOADS):
        return HttpResponseBadRequest("format is html, md or json", content_type="text/plain")
    doc = technical_documentation(version, viewer=request.user)
    if fmt != "html":
        return download(doc, fmt)
    context = {"doc": doc, "version": version, "model": version.model}
    return render(request, "catalog/documentation.html", context)
