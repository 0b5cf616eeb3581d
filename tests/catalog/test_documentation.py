"""The technical documentation page (SPEC 3.10) and its Markdown and JSON downloads: the
same sections, values and gaps on all three."""

import json
import re
from html import unescape

import markdown as markdown_lib
import pytest
from django.urls import reverse
from django.utils.html import escape

from compliance import display, md_line
from registry.services.registered_models import model_create
from registry.services.versions import version_create
from tests.compliance.test_documentation import SECTIONS, build_documented_version

pytestmark = pytest.mark.django_db

PAGE_QUERIES = 23


@pytest.fixture
def documented(model, admin, alice, bob, carol):
    return build_documented_version(model, admin=admin, alice=alice, bob=bob, carol=carol)


def url(version, **query) -> str:
    path = reverse(
        "catalog:version-documentation", args=["acme", version.model.name, version.number]
    )
    return path + "".join(f"?{k}={v}" for k, v in query.items())


def page_items(body: str) -> dict[str, bool]:
    """Each item of the page and whether it is marked missing."""
    return {
        key: missing == "true"
        for key, missing in re.findall(r'data-item="([^"]+)" data-missing="(true|false)"', body)
    }


def json_items(doc: dict) -> dict[str, dict]:
    return {f"{s['id']}.{i['id']}": i for s in doc["sections"] for i in s["items"]}


def test_it_renders_every_section_and_matches_both_downloads(alice_client, documented):
    response = alice_client.get(url(documented))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Technical documentation: fraud v2 <small>1.1.0</small></h1>" in body
    assert re.findall(r'<section id="([a-z_]+)" class="doc-section"', body) == SECTIONS
    doc = json.loads(alice_client.get(url(documented, format="json")).content)
    text = alice_client.get(url(documented, format="md")).content.decode()
    items = json_items(doc)
    # The same items, in the same order, with the same gaps.
    assert list(page_items(body)) == list(items)
    assert page_items(body) == {key: item["missing"] for key, item in items.items()}
    assert body.count('class="missing-label">Missing<') == len(doc["missing"])
    md_html = markdown_lib.markdown(text, extensions=["fenced_code", "tables"])
    assert [unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", md_html)] == [
        s["title"] for s in doc["sections"]
    ]
    assert md_html.count("<h3>") == len(items)
    assert md_html.count("<strong>Missing</strong>") == len(doc["missing"])
    # The same values: every scalar, every cell and every gap's hint on the page and in md.
    for key, item in items.items():
        if item["missing"]:
            assert escape(item["hint"]) in body and item["hint"] in text, key
        elif item["type"] == "value":
            assert escape(display(item["value"])) in body, key
            assert f"\n{md_line(item['value'])}\n" in text, key
        elif item["type"] == "table" and "empty" not in item:
            for row in item["value"]["rows"]:
                for cell in row:
                    assert f"<td>{escape(display(cell))}</td>" in body, (key, cell)
    assert doc["digest"] == documented.digest and f'data-digest="{doc["digest"]}"' in body


def test_it_marks_the_gaps_of_a_bare_version_on_every_format(acme, alice, alice_client):
    version = version_create(actor=alice, model=model_create(actor=alice, org=acme, name="bare"))
    body = alice_client.get(url(version)).content.decode()
    doc = json.loads(alice_client.get(url(version, format="json")).content)
    text = alice_client.get(url(version, format="md")).content.decode()
    missing = [key for key, is_missing in page_items(body).items() if is_missing]
    assert missing == doc["missing"] and "data.datasets" in missing
    assert text.count("**Missing**: ") == len(missing)
    assert 'id="data-datasets" data-item="data.datasets" data-missing="true"' in body


def test_it_downloads_markdown_as_an_attachment(alice_client, documented):
    response = alice_client.get(url(documented, format="md"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == (
        'attachment; filename="fraud-v2-technical-documentation.md"'
    )
    assert response.content.decode().startswith("# Technical documentation of acme/fraud v2\n")


def test_it_downloads_json_as_an_attachment(alice_client, documented):
    response = alice_client.get(url(documented, format="json"))
    assert response["Content-Type"] == "application/json"
    assert "fraud-v2-technical-documentation.json" in response["Content-Disposition"]
    assert json.loads(response.content)["sections"][0]["id"] == "identity"


def test_it_refuses_an_unknown_format(alice_client, documented):
    assert alice_client.get(url(documented, format="pdf")).status_code == 400


def test_it_shows_open_flags_with_severity_and_summary(carol_client, documented):
    body = carol_client.get(url(documented)).content.decode()
    flags = re.search(r'<section id="flags".*?</section>', body, re.S)[0]
    assert "<td>high</td>" in flags and "<td>Drift on EU traffic</td>" in flags
    assert "Old alert" not in flags  # resolved


def test_it_lets_a_viewer_read_it(carol_client, documented):
    assert carol_client.get(url(documented)).status_code == 200
    assert carol_client.get(url(documented, format="md")).status_code == 200


def test_it_answers_404_to_an_outsider(mallory_client, documented):
    assert mallory_client.get(url(documented)).status_code == 404
    assert mallory_client.get(url(documented, format="json")).status_code == 404


def test_it_answers_404_for_a_private_model_the_user_may_not_view(acme, admin, carol_client):
    secret = model_create(actor=admin, org=acme, name="secret", visibility="private")
    version = version_create(actor=admin, model=secret)
    assert carol_client.get(url(version)).status_code == 404
    assert carol_client.get(url(version, format="md")).status_code == 404


def test_it_refuses_post(alice_client, documented):
    assert alice_client.post(url(documented)).status_code == 405


def test_it_sends_anonymous_users_to_log_in(client, documented):
    response = client.get(url(documented))
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_is_linked_from_the_version_page(carol_client, documented):
    page = reverse("catalog:version", args=["acme", "fraud", documented.number])
    body = carol_client.get(page).content.decode()
    assert f'href="{url(documented)}">Technical documentation</a>' in body


def test_it_does_not_let_user_text_into_the_page_as_html(acme, alice, alice_client):
    bare = model_create(actor=alice, org=acme, name="hostile")
    version = version_create(
        actor=alice,
        model=bare,
        description="<script>window.pwned=1</script>**bold**",
        framework="<img src=x onerror=alert(1)>",
        params={"items": "<b>x</b>"},
    )
    body = alice_client.get(url(version)).content.decode()
    assert "<script>window.pwned" not in body and "<img src=x" not in body
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body
    assert "<strong>bold</strong>" in body  # descriptions are rendered, then sanitised


def test_it_pins_the_query_count_of_the_page(
    alice_client, documented, django_assert_max_num_queries
):
    with django_assert_max_num_queries(PAGE_QUERIES):
        assert alice_client.get(url(documented)).status_code == 200
