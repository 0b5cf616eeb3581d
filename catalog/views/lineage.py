"""The version page's lineage graph and its "Promote to main" form (SPEC 3.6, 4.1)."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.forms import first_error
from catalog.views import version_url
from registry.errors import Invalid
from registry.lineage import lineage_svg, version_lineage
from registry.models import Branch, ModelVersion
from registry.permissions import Access, get_version_for_user
from registry.services.branches import version_promote


class PromoteForm(forms.Form):
    """Kept with its view (catalog.forms belongs to the older pages); the service decides."""

    label = forms.CharField(
        required=False, max_length=128, label="Label of the new version (SemVer, optional)"
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Description (optional; else the promoted version's)",
    )


def lineage_context(request: HttpRequest, version: ModelVersion, access: Access) -> dict[str, Any]:
    """What the version page's lineage section shows: the graph, the plain lists it draws
    (the accessible, script-free reading of it), and whether to offer promotion."""
    lineage = version_lineage(version, request.user)
    return {
        "lineage": lineage,
        "lineage_svg": lineage_svg(lineage),
        "can_promote": access.write and version.branch.name != Branch.MAIN,
        "promote_form": PromoteForm(),
    }


@login_required
@require_POST
@domain_errors
def version_promote_view(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = PromoteForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    promoted = version_promote(
        actor=request.user,
        version=version,
        label=form.cleaned_data["label"] or None,
        description=form.cleaned_data["description"] or None,
    )
    messages.success(
        request,
        f"Version {version.number} promoted to main as version {promoted.number}.",
    )
    return redirect(version_url(promoted))
