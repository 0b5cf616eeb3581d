from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from registry.models import ModelVersion, RegisteredModel, Stage


@login_required
def home(request: HttpRequest) -> HttpResponse:
    models = RegisteredModel.objects.visible_to(request.user)
    versions = ModelVersion.objects.visible_to(request.user)
    context = {
        "model_count": models.count(),
        "version_count": versions.count(),
        "production_count": versions.filter(stage=Stage.PRODUCTION).count(),
        "models": models.select_related("org").order_by("org__slug", "name")[:50],
    }
    return render(request, "catalog/home.html", context)
