"""Presentation helpers: sanitised Markdown, sizes, stage and lock badges, tag searches."""

import re
import xml.etree.ElementTree as etree
from urllib.parse import urlencode, urlsplit

import markdown as markdown_lib
import nh3
from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from catalog.forms import model_tag_query, uses_query_language
from config.version import VERSION
from registry.models import LockLevel, Stage

register = template.Library()

_STAGE_LABELS = dict(Stage.choices)
_LOCK_LABELS = dict(LockLevel.choices)
# What a browser drops from a URL before reading it: tabs and line breaks anywhere, controls
# and spaces at either end. It also reads a backslash as a slash (/\host is //host).
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_TRIMMED = "".join(chr(c) for c in range(0x21))


def is_local_url(url: str) -> bool:
    """Whether a browser would load `url` from this server: a relative path, or an absolute
    URL of SITE_URL's origin. Anything else (another host, //host, data:) is not."""
    url = _URL_IGNORED.sub("", url).strip(_URL_TRIMMED).replace("\\", "/")
    if not url or url.startswith("//"):
        return False
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        return True
    site = urlsplit(settings.SITE_URL)
    return (parts.scheme.lower(), parts.netloc.lower()) == (site.scheme, site.netloc.lower())


class _ForeignImagesToLinks(Treeprocessor):
    """An image from another host would be fetched by every reader's browser (a tracking
    pixel): it becomes a link to it, which loads nothing until followed."""

    def run(self, root: etree.Element) -> None:
        for parent in root.iter():
            for index, child in enumerate(parent):
                if child.tag != "img" or is_local_url(child.get("src", "")):
                    continue
                src = child.get("src", "")
                # Inside a link, the link stays the link: the image becomes its text.
                link = etree.Element("span" if parent.tag == "a" else "a")
                if parent.tag != "a":
                    link.set("href", src)
                link.text = child.get("alt") or src
                link.tail = child.tail
                parent[index] = link


class _LocalImagesOnly(Extension):
    def extendMarkdown(self, md: markdown_lib.Markdown) -> None:
        # Last, after "inline" (20), which makes the images, and "unescape" (0), which
        # writes their sources as the browser will read them.
        md.treeprocessors.register(_ForeignImagesToLinks(md), "local_images_only", -10)


def _local_images_only(tag: str, attribute: str, value: str) -> str | None:
    # Raw HTML (<img src=...>) never reaches the tree above: its foreign source goes here.
    if tag == "img" and attribute == "src" and not is_local_url(value):
        return None
    return value


@register.filter
def markdown(text: str | None) -> SafeString:
    """The one place Markdown becomes HTML: rendered, then sanitised with nh3 (no scripts,
    no event handlers, no javascript: links, and images only from this server)."""
    html = markdown_lib.markdown(
        text or "", extensions=["fenced_code", "tables", _LocalImagesOnly()]
    )
    return mark_safe(nh3.clean(html, attribute_filter=_local_images_only))


@register.filter
def filesize(size: int | None) -> str:
    value = float(size or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@register.simple_tag
def stage_badge(stage: str) -> SafeString:
    return format_html(
        '<span class="badge stage stage-{}">{}</span>', stage, _STAGE_LABELS.get(stage, stage)
    )


@register.simple_tag
def lock_badge(level: str) -> SafeString:
    return format_html(
        '<span class="badge lock lock-{}" title="Lock level">lock: {}</span>',
        level,
        _LOCK_LABELS.get(level, level),
    )


@register.filter
def get_item(mapping: dict, key: str):
    return (mapping or {}).get(key)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (for pagination and tabs)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def modelvault_version() -> str:
    return VERSION


# A tag's key as the query language reads it after `tags.` (registry/query/parse.py's words).
_TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")


@register.simple_tag
def tag_search(org: str, key: str, value, kind: str = "version") -> str:
    """The catalog search for one tag: `tags.team == "nlp"` (the query language: models with
    a version so tagged) for a version's tag, `team=nlp` for a model's own; "" for a tag
    neither can spell."""
    if not isinstance(key, str):
        return ""
    text = str(value)
    if kind == "model":
        query = f"{key}={text}"
        if uses_query_language(query) or model_tag_query(query) != (key, text.strip()):
            return ""
    elif _TAG_KEY.fullmatch(key):
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        query = f'tags.{key} == "{quoted}"'
    else:
        return ""
    return reverse("catalog:catalog", args=[org]) + "?" + urlencode({"q": query})
