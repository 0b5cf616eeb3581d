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


@pytest.mark.parametrize(
    "url",
    [
        "/orgs/acme/models/fraud%00/",
        "/orgs/acme/models/%00/",
        "/orgs/acme/models/fraud/versions/1/?request=%00",
        "/orgs/acme/models/?q=tags.team%20%3D%3D%20%22a%00%22",
        "/orgs/acme/models/?%00=x",
        "/admin/auth/user/%00/change/",
    ],
)
def test_a_page_url_no_database_could_store_is_a_400_page(admin_client, version, url):
    """A NUL or a lone surrogate in the path or the query is answered before any view:
    PostgreSQL would refuse it with a DataError (a 500)."""
    response = admin_client.get(url)
    assert response.status_code == 400, url
    assert response["Content-Type"].startswith("text/html")
