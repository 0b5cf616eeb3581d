import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_renders_every_page(alice_client, version, model):
    urls = [
        reverse("catalog:home"),
        reverse("catalog:catalog", args=["acme"]),
        reverse("catalog:version", args=["acme", "fraud", version.number]),
        reverse("catalog:version", args=["acme", "fraud", version.number]) + "?request=production",
        reverse("catalog:version-lock", args=["acme", "fraud", version.number]),
        reverse("approvals:pending"),
        reverse("catalog:password-change"),
    ] + [
        reverse("catalog:model", args=["acme", "fraud"]) + f"?tab={t}"
        for t in ("overview", "versions", "approvals", "activity", "settings")
    ]
    for url in urls:
        response = alice_client.get(url)
        assert response.status_code == 200, url
