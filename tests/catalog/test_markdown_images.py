"""Images in rendered Markdown come from this server only (no tracking pixels): an image of
another host becomes a link, a raw <img> of another host loses its source; relative and
same-origin images stay. Through the UI's pages and the API's printable document."""

import re

import pytest
from django.test import Client

from catalog.templatetags.catalog_tags import is_local_url, markdown
from registry.services.comments import comment_add
from registry.services.registered_models import model_update
from registry.services.versions import version_create
from tests.conftest import logged_in

PIXEL = "https://tracker.example/pixel.gif"
README = (
    f"Trained on **2026** data. ![pixel]({PIXEL})\n\n"
    "![chart](/static/modelvault/chart.png) ![relative](figures/roc.png)\n\n"
    '<img src="//tracker.example/raw.gif" alt="raw"> '
    "![data](data:image/gif;base64,R0lGODlhAQABAAAAACw=)\n"
)


def foreign_images(html: str) -> list[str]:
    return [host for host in ("tracker.example", "data:image") if f'src="{host}' in html] + [
        src for src in ("https://tracker", "//tracker") if f'src="{src}' in html
    ]


def assert_local_images_only(html: str) -> None:
    assert foreign_images(html) == []
    assert '<img alt="chart" src="/static/modelvault/chart.png">' in html
    assert '<img alt="relative" src="figures/roc.png">' in html
    assert f'<a href="{PIXEL}" rel="noopener noreferrer">pixel</a>' in html
    assert '<img alt="raw">' in html


@pytest.fixture
def illustrated(model, alice):
    model_update(actor=alice, model=model, readme=README)
    return version_create(actor=alice, model=model, description=README, readme=README)


def test_it_keeps_foreign_images_off_the_version_page(alice_client, illustrated):
    comment_add(
        actor=illustrated.created_by,
        model=illustrated.model,
        version=illustrated,
        body=f"![c]({PIXEL})",
    )

    page = alice_client.get(f"/orgs/acme/models/fraud/versions/{illustrated.number}/")

    html = page.content.decode()
    assert_local_images_only(html)
    assert f'<a href="{PIXEL}" rel="noopener noreferrer">c</a>' in html  # the comment


def test_it_keeps_foreign_images_off_the_model_card(alice_client, illustrated):
    html = alice_client.get("/orgs/acme/models/fraud/").content.decode()

    assert_local_images_only(html)


def test_it_keeps_foreign_images_off_the_documentation_page(alice_client, illustrated):
    url = f"/orgs/acme/models/fraud/versions/{illustrated.number}/documentation/"

    assert_local_images_only(alice_client.get(url).content.decode())


def test_it_keeps_foreign_images_off_the_api_printable_document(cast, illustrated):
    from registry.services.tokens import token_create

    _, token = token_create(actor=cast.alice, user=cast.alice, name="docs")
    url = f"/api/v1/orgs/acme/models/fraud/versions/{illustrated.number}/documentation"

    page = Client().get(url, {"format": "html"}, headers={"Authorization": f"Bearer {token}"})

    assert page.status_code == 200
    assert_local_images_only(page.content.decode())


def test_it_keeps_images_inert_in_the_markdown_download(cast, illustrated):
    url = f"/orgs/acme/models/fraud/versions/{illustrated.number}/documentation/"

    text = logged_in(cast.alice).get(url, {"format": "md"}).content.decode()

    # User text sits in code fences there: no Markdown viewer renders its images.
    parts = re.split(r"^```.*$", text, flags=re.MULTILINE)
    fenced, outside = parts[1::2], parts[0::2]
    assert sum(PIXEL in block for block in fenced) == 3  # the model's readme, the version's both
    assert not any(PIXEL in block for block in outside)


@pytest.mark.parametrize(
    "url",
    [
        "https://tracker.example/p.gif",
        "http://tracker.example/p.gif",
        "//tracker.example/p.gif",
        "///tracker.example/p.gif",
        "/\\tracker.example/p.gif",
        "\\\\tracker.example/p.gif",
        " //tracker.example/p.gif",
        "/\t/tracker.example/p.gif",
        "\x01//tracker.example",
        "data:image/gif;base64,R0lGOD==",
        "javascript:alert(1)",
        "HTTPS://TRACKER.example/p.gif",
        "http://127.0.0.1:9999/other-port.gif",
        "",
    ],
)
def test_it_takes_these_for_other_servers(url, settings):
    settings.SITE_URL = "http://127.0.0.1:8000"

    assert not is_local_url(url)
    if "\t" not in url:  # (Markdown expands a tab into spaces, which make a local path)
        assert 'src="' not in markdown(f'<img src="{url}">')


@pytest.mark.parametrize(
    "url",
    [
        "/static/x.png",
        "figures/roc.png",
        "../figures/roc.png",
        "?page=2",
        "http://127.0.0.1:8000/static/x.png",
        "HTTP://127.0.0.1:8000/static/x.png",
    ],
)
def test_it_takes_these_for_this_server(url, settings):
    settings.SITE_URL = "http://127.0.0.1:8000"

    assert is_local_url(url)
    assert f'src="{url}"' in markdown(f'<img src="{url}">')


@pytest.mark.parametrize(
    "source",
    [
        PIXEL,
        "//tracker.example/p.gif",
        "<//tracker.example/a b.gif>",
        "/\\/tracker.example/p.gif",
        "data:image/gif;base64,R0lGOD==",
    ],
)
def test_it_turns_an_image_of_another_server_into_a_link(source):
    html = markdown(f"See ![the chart]({source}).")

    assert "<img" not in html
    assert re.fullmatch(
        r'<p>See <a( href="[^"]+")? rel="noopener noreferrer">the chart</a>\.</p>', html
    )


def test_it_turns_a_referenced_image_of_another_server_into_a_link():
    html = markdown(f"![pixel][p]\n\n[p]: {PIXEL}")

    assert html == f'<p><a href="{PIXEL}" rel="noopener noreferrer">pixel</a></p>'


def test_it_keeps_an_image_inside_a_link_as_its_text():
    html = markdown(f"[![badge]({PIXEL})](https://ci.example/build)")

    assert html == (
        '<p><a href="https://ci.example/build" rel="noopener noreferrer"><span>badge</span></a></p>'
    )
