"""Green means production (SPEC 4.1): bright green only where there is production, and text
on it readable (WCAG AA: 4.5:1), computed from the site stylesheet itself."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from registry.services.versions import version_create

SITE_CSS = finders.find("modelvault/site.css")


def luminance(color: str) -> float:
    channels = [int(color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted([luminance(a), luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def rule(css: str, selector: str) -> str:
    found = re.search(r"(^|\n)" + re.escape(selector) + r"[^{]*\{([^}]*)\}", css)
    assert found, selector
    return found.group(2)


def test_it_makes_links_on_production_green_readable():
    css = Path(SITE_CSS).read_text()
    green = re.search(r"--production:\s*(#[0-9a-f]{6})", css).group(1)
    assert green == "#00c853"  # the bright green stays
    link = re.search(r"color:\s*(#[0-9a-f]{6})", rule(css, ".stage-production a")).group(1)
    assert contrast(link, green) >= 4.5
    accent = re.search(r"--accent:\s*(#[0-9a-f]{6})", css).group(1)
    assert contrast(accent, green) < 4.5  # why the rule is needed: 2.7:1


@pytest.mark.django_db
def test_it_paints_no_stage_green_with_no_version_in_it(alice_client, model, alice):
    version_create(actor=alice, model=model)
    body = alice_client.get(reverse("catalog:catalog", args=["acme"])).content.decode()
    assert '<li class="empty">Production <b>0</b></li>' in body
    assert '<li class="stage-unassigned">Unassigned <b>1</b></li>' in body
    home = alice_client.get(reverse("catalog:home")).content.decode()
    assert "stage-production" not in home.split("In production")[0].rsplit("<div", 1)[-1]
