"""The browser's rules on every kind of page (docs/architecture.md, "Browser hardening"): a
Content-Security-Policy without inline code, and a Permissions-Policy; and no page carrying
inline code that the policy would refuse (the browser itself: tests/e2e/test_csp.py)."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import simple_history
from django.conf import settings
from django.test import Client

HISTORY_LIST = "simple_history/object_history_list.html"


class InlineCode(HTMLParser):
    """What a policy without 'unsafe-inline' refuses: script and style elements without a
    source or a nonce, style and event-handler attributes, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        runs = named.get("type") in (None, "", "text/javascript", "module")
        if tag == "script" and runs and "src" not in named and "nonce" not in named:
            self.found.append(self.get_starttag_text() or tag)
        if tag == "style" and "nonce" not in named:
            self.found.append(self.get_starttag_text() or tag)
        for name, value in attrs:
            if name == "style" or name.startswith("on") or "javascript:" in (value or ""):
                self.found.append(f"{tag} {name}={value!r}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def pages(cast, root, version, model) -> list[tuple[str, Client]]:
    """(url, client) for each kind of page: the UI, the admin console, the API and its docs,
    the standalone technical document, the login, lockout and error pages."""
    admin, superuser, anonymous = Client(), Client(), Client()
    admin.force_login(cast.admin)
    superuser.force_login(root)
    v = f"/orgs/acme/models/fraud/versions/{version.number}/"
    ui = [
        "/",
        "/orgs/acme/models/",
        "/orgs/acme/models/fraud/",
        *(f"/orgs/acme/models/fraud/?tab={t}" for t in ("versions", "approvals", "activity")),
        "/orgs/acme/models/fraud/?tab=settings",
        v,
        f"{v}lock/",
        f"{v}documentation/",
        f"/orgs/acme/models/fraud/compare/?a={version.number}&b={version.number}",
        "/approvals/",
        "/account/tokens/",
        "/account/password/",
        "/notifications/preferences/",
        "/notifications/acme/webhooks/",
        "/orgs/acme/models/missing/",  # the 404 page
    ]
    console = [
        "/admin/",
        "/admin/registry/registeredmodel/",
        f"/admin/registry/registeredmodel/{model.pk}/change/",
        f"/admin/registry/registeredmodel/{model.pk}/history/",
        "/admin/registry/registeredmodel/add/",
        f"/admin/registry/modelversion/{version.pk}/history/",
        "/admin/auth/user/",
        "/admin/axes/accessattempt/",
        "/admin/password_change/",
    ]
    api = [
        "/api/v1/docs",
        "/api/v1/openapi.json",
        f"/api/v1/orgs/acme/models/fraud/versions/{version.number}/documentation?format=html",
        "/api/v1/orgs/acme/models",
        "/api/v1/nowhere",
    ]
    return (
        [(url, admin) for url in ui + api]
        + [(url, superuser) for url in console]
        + [(url, anonymous) for url in ("/login/", "/admin/login/", "/api/v1/orgs/acme/models")]
    )


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_it_sends_both_policies_on_every_kind_of_page(pages):
    for url, client in pages:
        response = client.get(url)
        assert response.status_code in (200, 401, 404), url
        policy = directives(response)
        assert policy["default-src"] == ["'self'"], url
        assert policy["script-src"] == ["'self'"], url
        assert policy["style-src"][0] == "'self'", url
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in response["Content-Security-Policy"], url
        assert "camera=()" in response["Permissions-Policy"], url
        assert "geolocation=()" in response["Permissions-Policy"], url


def test_it_serves_no_page_with_inline_code(pages):
    for url, client in pages:
        response = client.get(url)
        if response["Content-Type"].startswith("text/html"):
            assert inline_code(response.content.decode()) == [], url


def test_it_refuses_inline_code_where_a_page_had_some():
    # The scanner finds what it is for (else the test above would prove nothing).
    assert inline_code('<p style="x"><a onclick="y">z</a><script>1</script><style></style>') == [
        "p style='x'",
        "a onclick='y'",
        "<script>",
        "<style>",
    ]


def test_it_lets_the_standalone_document_style_itself_with_a_nonce(alice_client, version):
    url = f"/api/v1/orgs/acme/models/fraud/versions/{version.number}/documentation?format=html"
    first, second = alice_client.get(url), alice_client.get(url)

    nonces = []
    for response in (first, second):
        (nonce,) = re.findall(r'<style nonce="([^"]+)">', response.content.decode())
        assert directives(response)["style-src"] == ["'self'", f"'nonce-{nonce}'"]
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    # Pages that use no nonce offer none.
    assert directives(alice_client.get("/"))["style-src"] == ["'self'"]


def test_it_serves_the_api_docs_from_this_server(alice_client):
    page = alice_client.get("/api/v1/docs").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith(settings.STATIC_URL) or s.startswith("/") for s in sources)
    assert "/static/ninja/swagger-ui-bundle.js" in sources


def test_it_keeps_the_history_list_in_step_with_simple_history(settings):
    ours = Path(settings.PACKAGE_DIR, "templates", HISTORY_LIST).read_text().splitlines()
    theirs = Path(simple_history.__file__).parent.joinpath("templates", HISTORY_LIST)

    assert ours[0].startswith("{#") and ours[0].endswith("#}")
    assert ours[1:] == [
        line.replace(' style="border-top: 0"', "") for line in theirs.read_text().splitlines()
    ]
