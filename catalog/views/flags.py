"""Flags on the version page (SPEC 3.10): raise (any viewer), resolve (writers), and the
open-flag counts that the catalog tiles and the versions dashboard show."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog.errors import domain_errors
from catalog.forms import first_error
from registry.errors import Invalid, NotFound
from registry.models import Flag, ModelVersion, Severity
from registry.permissions import Access, get_version_for_user
from registry.services.flags import MAX_DETAILS, MAX_SUMMARY, flag_raise, flag_resolve


def _flags_url(version: ModelVersion) -> str:
    kwargs = {"org": version.model.org.slug, "model": version.model.name, "number": version.number}
    return reverse("catalog:version", kwargs=kwargs) + "#flags"


class FlagForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.MEDIUM)
    summary = forms.CharField(max_length=MAX_SUMMARY, label="Summary")
    details = forms.CharField(
        required=False,
        max_length=MAX_DETAILS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Details (what was observed, where, since when)",
    )


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        required=False,
        max_length=MAX_DETAILS,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Resolution",
    )


def open_flag_count(to: str) -> Coalesce:
    """The open flags of each row as a correlated subquery (`to`: "model" or "version"), so a
    list page counts them in its own query instead of one query per row."""
    counts = (
        Flag.objects.open()
        .filter(**{to: OuterRef("pk")})
        .order_by()
        .values(to)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counts), 0)


def flags_context(version: ModelVersion, access: Access) -> dict:
    """What the version page shows of its flags, in one query."""
    flags = list(Flag.objects.filter(version=version).select_related("raised_by", "resolved_by"))
    open_flags = [flag for flag in flags if flag.is_open]
    return {
        "open_flags": open_flags,
        "resolved_flags": [flag for flag in flags if not flag.is_open],
        "flag_form": FlagForm(),
        "resolve_form": ResolveForm(),
        "can_resolve_flags": access.write,
    }


@login_required
@require_POST
@domain_errors
def version_flag(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number)
    form = FlagForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    flag = flag_raise(actor=request.user, version=version, **form.cleaned_data)
    messages.success(request, f"Flag #{flag.pk} raised; watchers of {version.model.name} are told.")
    return redirect(_flags_url(version))


@login_required
@require_POST
@domain_errors
def version_flag_resolve(
    request: HttpRequest, org: str, model: str, number: int, flag_id: int
) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number, need="write")
    flag = Flag.objects.filter(version=version, pk=flag_id).select_related("model__org").first()
    if flag is None:
        raise NotFound(f"flag #{flag_id} not found")
    form = ResolveForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    flag_resolve(actor=request.user, flag=flag, resolution=form.cleaned_data["resolution"])
    messages.success(request, f"Flag #{flag.pk} resolved.")
    return redirect(_flags_url(version))
