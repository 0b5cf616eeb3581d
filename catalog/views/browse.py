"""The catalog of an organization and the model card with its tabs; the card's free text and
tags are edited here too."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from approvals.models import StageChangeRequest
from catalog.charts import stage_bars, value_bars
from catalog.errors import domain_errors
from catalog.forms import (
    SORTS,
    ActivityFilterForm,
    CatalogSearchForm,
    GrantForm,
    KeyValueFormSet,
    ModelMetadataForm,
    ModelSettingsForm,
    VersionFilterForm,
    first_error,
    formset_error,
    initial_rows,
    model_tag_query,
    uses_query_language,
)
from catalog.views.flags import open_flag_count
from catalog.views.settings import branches_context
from registry.compare import metric_trend
from registry.errors import Invalid
from registry.models import (
    ActivityEvent,
    Alias,
    Branch,
    Flag,
    ModelVersion,
    RegisteredModel,
    Stage,
)
from registry.permissions import get_model_for_user, get_org_for_user, model_access
from registry.query import compile_query, search_versions
from registry.services.registered_models import model_update
from registry.state import model_state_at

TABS = ("overview", "versions", "approvals", "activity", "settings")


def _count_stages(models) -> None:
    """Versions per stage of one page of models, in one grouped query (not per tile, and not
    over the whole catalog before paginating)."""
    counts = (
        ModelVersion.objects.filter(model__in=[m.pk for m in models])
        .order_by()
        .values_list("model_id", "stage")
        .annotate(n=Count("*"))
    )
    by_model: dict = {}
    for model_id, stage, n in counts:
        by_model.setdefault(model_id, {})[stage] = n
    for model in models:
        found = by_model.get(model.pk, {})
        model.stage_counts = [(stage, label, found.get(stage, 0)) for stage, label in Stage.choices]
        model.version_count = sum(found.values())
        model.in_production = found.get(Stage.PRODUCTION, 0)


def _search(models, query: str):
    """The query language (SPEC 3.9) when the text uses an operator: models with a version
    that matches; else plain name and description search, or `key=value` on tags."""
    if uses_query_language(query):
        matching = ModelVersion.objects.filter(model=OuterRef("pk")).filter(compile_query(query))
        return models.filter(Exists(matching))
    tag = model_tag_query(query)
    if tag is not None:
        return models.filter(**{f"tags__{tag[0]}": tag[1]})
    return models.filter(Q(name__icontains=query) | Q(description__icontains=query))


@login_required
@domain_errors
def catalog(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_user(request.user, org)
    form = CatalogSearchForm(request.GET or None)
    models = (
        RegisteredModel.objects.visible_to(request.user)
        .filter(org=organization)
        .annotate(open_flags=open_flag_count("model"))
    )
    query = stage = ""
    sort = "name"
    if form.is_valid():
        query, stage = form.cleaned_data["q"].strip(), form.cleaned_data["stage"]
        sort = form.cleaned_data["sort"] or "name"
    query_error = ""
    if query:
        try:
            models = _search(models, query)
        except Invalid as exc:  # a malformed query is answered on the page, position included
            query_error, models = exc.message, models.none()
    if stage:
        has_stage = ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage)
        models = models.filter(Exists(has_stage))
    if sort == "-versions":
        models = models.annotate(version_count=Count("versions"))
    page = Paginator(models.order_by(SORTS[sort][1], "name"), 24).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    _count_stages(page.object_list)
    context = {"org": organization, "form": form, "page": page, "query_error": query_error}
    return render(request, "catalog/catalog.html", context)


def _tab_counts(model: RegisteredModel) -> dict:
    return {"approvals": StageChangeRequest.objects.for_model(model).pending().count()}


def _overview(request: HttpRequest, model: RegisteredModel) -> dict:
    # COUNT(*) grouped in stage order reads only the (model, stage) index: no table rows.
    counts = dict(
        ModelVersion.objects.filter(model=model)
        .order_by("stage")
        .values_list("stage")
        .annotate(n=Count("*"))
        .values_list("stage", "n")
    )
    production = (
        ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION)
        .annotate(open_flags=open_flag_count("version"))
        .order_by("-number")[:10]
    )
    # SPEC 3.10: open flags show wherever the version shows.
    open_flags = (
        Flag.objects.open()
        .filter(model=model)
        .select_related("version")
        .order_by("-created_at")[:20]
    )
    trend = metric_trend(model, request.GET.get("metric"))
    aliases = Alias.objects.filter(model=model).select_related("version").order_by("name")
    return {
        "metadata_form": ModelMetadataForm(
            initial={"description": model.description, "readme": model.readme}
        ),
        "tag_rows": KeyValueFormSet(initial=initial_rows(model.tags), prefix="tags"),
        "stage_chart": stage_bars(counts),
        "stage_counts": counts,
        "production_versions": production,
        "open_flags": open_flags,
        "aliases": aliases[:50],
        "metric": trend["metric"],
        "metric_names": trend["metrics"],
        "trend": value_bars([(f"v{number}", value) for number, value in trend["points"]]),
    }


def _versions(request: HttpRequest, model: RegisteredModel) -> dict:
    form = VersionFilterForm(request.GET or None)
    query_error = ""
    versions = ModelVersion.objects.filter(model=model).select_related("branch", "created_by")
    if form.is_valid():
        if form.cleaned_data["stage"]:
            versions = versions.filter(stage=form.cleaned_data["stage"])
        if form.cleaned_data["branch"]:
            versions = versions.filter(branch__name=form.cleaned_data["branch"])
        try:
            versions = search_versions(versions, form.cleaned_data["q"])
        except Invalid as exc:
            query_error, versions = exc.message, versions.none()
    pending = StageChangeRequest.objects.pending().filter(version=OuterRef("pk"))
    versions = versions.annotate(
        has_pending=Exists(pending), open_flags=open_flag_count("version")
    ).order_by("-number")
    return {
        "filter_form": form,
        "query_error": query_error,
        "page": Paginator(versions, 50).get_page(request.GET.get("page")),
        "branches": Branch.objects.filter(model=model).values_list("name", flat=True),
    }


def _approvals(request: HttpRequest, model: RegisteredModel) -> dict:
    pending = StageChangeRequest.objects.for_model(model).pending().for_listing()
    return {"page": Paginator(pending, 50).get_page(request.GET.get("page"))}


def _activity(request: HttpRequest, model: RegisteredModel) -> dict:
    form = ActivityFilterForm(request.GET or None)
    events = ActivityEvent.objects.for_model(model).select_related("version")
    state = None
    if form.is_valid():
        if form.cleaned_data["verb"]:
            events = events.filter(verb__startswith=form.cleaned_data["verb"])
        when = form.cleaned_data["at"]
        if when is not None:
            if timezone.is_naive(when):
                when = timezone.make_aware(when)
            state = {"at": when, **model_state_at(model, when)}
    events = events.order_by("-seq")
    verbs = (
        ActivityEvent.objects.for_model(model).order_by().values_list("verb", flat=True).distinct()
    )
    return {
        "filter_form": form,
        "page": Paginator(events, 50).get_page(request.GET.get("page")),
        "verbs": sorted(verbs),
        "state": state,
    }


def _settings(request: HttpRequest, model: RegisteredModel) -> dict:
    return {
        "settings_form": ModelSettingsForm(
            initial={"visibility": model.visibility, "required_approvals": model.required_approvals}
        ),
        "grant_form": GrantForm(),
        "user_grants": model.modeluserpermission_set.select_related("user", "permission"),
        "team_grants": model.modelgrouppermission_set.select_related("group", "permission"),
        **branches_context(model),
    }


TAB_CONTEXT = {
    "overview": _overview,
    "versions": _versions,
    "approvals": _approvals,
    "activity": _activity,
    "settings": _settings,
}


@login_required
@domain_errors
def model_card(request: HttpRequest, org: str, model: str) -> HttpResponse:
    registered = get_model_for_user(request.user, org, model)
    access = model_access(request.user, registered)
    may_govern = access.admin or registered.owner_id == request.user.pk
    tab = request.GET.get("tab", "overview")
    if tab not in TABS or (tab == "settings" and not (may_govern or access.write)):
        tab = "overview"
    context = {
        "model": registered,
        "access": access,
        "may_govern": may_govern,
        "tab": tab,
        "tabs": TABS,
        "counts": _tab_counts(registered),
        "latest": ModelVersion.objects.filter(model=registered).aggregate(n=Max("number"))["n"],
        **TAB_CONTEXT[tab](request, registered),
    }
    return render(request, f"catalog/model_{tab}.html", context)


@login_required
@require_POST
@domain_errors
def model_edit_metadata(request: HttpRequest, org: str, model: str) -> HttpResponse:
    """Description, readme and tags, edited on the card (write permission; the service
    decides)."""
    registered = get_model_for_user(request.user, org, model, need="write")
    form = ModelMetadataForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    tags = KeyValueFormSet(request.POST, prefix="tags")
    if not tags.is_valid():
        raise Invalid(formset_error(tags, "tags"))
    model_update(actor=request.user, model=registered, tags=tags.as_dict(), **form.cleaned_data)
    messages.success(request, "Description, readme and tags saved.")
    return redirect(reverse("catalog:model", args=[registered.org.slug, registered.name]))
