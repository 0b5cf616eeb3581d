"""Download a model's activity as a verifiable export (SPEC 3.7) from its Activity tab: the
same file as `export_activity` and the API write (registry/export.py)."""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from catalog.errors import domain_errors
from catalog.forms import first_error
from registry.export import CONTENT_TYPES, export_for
from registry.permissions import get_model_for_user


class ActivityExportForm(forms.Form):
    """Whole days in UTC, both ends included; either end may stay open."""

    format = forms.ChoiceField(choices=[("jsonl", "JSON Lines"), ("csv", "CSV")], label="Format")
    since = forms.DateField(required=False, label="From (UTC)", input_formats=["%Y-%m-%d"])
    until = forms.DateField(required=False, label="To (UTC)", input_formats=["%Y-%m-%d"])

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("the start date is after the end date")
        return cleaned


@login_required
@require_GET
@domain_errors
def activity_export(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    form = ActivityExportForm(request.GET)
    if not form.is_valid():
        messages.error(request, first_error(form))
        url = reverse("catalog:model", args=[registered.org.slug, registered.name])
        return redirect(f"{url}?tab=activity")
    since, until, fmt = (form.cleaned_data[k] for k in ("since", "until", "format"))
    export = export_for(
        registered.org,
        user=request.user,
        model=registered,
        since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
        exported_by=request.user.get_username(),
    )
    response = StreamingHttpResponse(
        export.render(fmt), content_type=f"{CONTENT_TYPES[fmt]}; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{export.filename(fmt)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
