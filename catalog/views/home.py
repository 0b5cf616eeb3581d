from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from approvals.models import StageChangeRequest
from catalog.charts import stage_bars
from registry.models import ActivityEvent, Membership, ModelVersion, RegisteredModel, Stage


@login_required
def home(request: HttpRequest) -> HttpResponse:
    models = RegisteredModel.objects.visible_to(request.user)
    versions = ModelVersion.objects.visible_to(request.user)
    by_stage = dict(
        versions.order_by().values_list("stage").annotate(n=Count("*")).values_list("stage", "n")
    )
    events = (
        ActivityEvent.objects.filter(model__in=models)
        .select_related("model__org", "version")
        .order_by("-created_at", "-seq")[:10]
    )
    reviews = StageChangeRequest.objects.reviewable_by(request.user).for_listing()[:10]
    context = {
        "model_count": models.count(),
        "version_count": sum(by_stage.values()),
        "production_count": by_stage.get(Stage.PRODUCTION, 0),
        "chart": stage_bars(by_stage),
        "events": events,
        "reviews": reviews,
        "models": models.select_related("org").order_by("org__slug", "name")[:12],
        "orgs": Membership.objects.filter(user=request.user).select_related("org"),
    }
    return render(request, "catalog/home.html", context)


@login_required
def catalog_index(request: HttpRequest) -> HttpResponse:
    """/models/: the catalog of the user's first organization."""
    membership = Membership.objects.filter(user=request.user).select_related("org").first()
    if membership is None:
        messages.info(
            request, "You belong to no organization yet: an admin of one can add you to it."
        )
        return redirect("catalog:home")
    return redirect("catalog:catalog", org=membership.org.slug)
