"""The browsing UI, one module per page family: home, catalog and model card, version page."""

from django.urls import reverse

from registry.models import ModelVersion


def version_url(version: ModelVersion) -> str:
    return reverse(
        "catalog:version",
        kwargs={
            "org": version.model.org.slug,
            "model": version.model.name,
            "number": version.number,
        },
    )
