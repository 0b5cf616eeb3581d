"""The lineage of a version (SPEC 3.6) as data, and as a server-rendered SVG graph.

`version_lineage` answers in a fixed number of queries (the parents, the children) whatever
the number of relatives, and leaves out relatives in models the viewer may not view: they
do not exist for that viewer (SPEC 3.1), so they are neither drawn nor counted.
`lineage_svg` draws parents, datasets and the code version -> this version -> children;
every text is escaped, no script, and each version node links to its page.
"""

from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from registry.models import ModelVersion, RegisteredModel


def _node(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": str(version.pk),
        "org": version.model.org.slug,
        "model": version.model.name,
        "number": version.number,
        "label": version.label,
        "branch": version.branch.name,
        "protected": version.branch.protected,
        "stage": version.stage,
        "digest": version.digest,
    }


def version_lineage(version: ModelVersion, user) -> dict[str, Any]:
    """Parents and children the user may view, the branch, datasets, code version and
    experiment of `version` (fetched with its model, org and branch)."""
    visible = RegisteredModel.objects.visible_to(user)
    related = ("model__org", "branch")
    parents = (
        ModelVersion.objects.filter(child_links__child=version, model__in=visible)
        .select_related(*related)
        .order_by("model__name", "number")
    )
    children = (
        ModelVersion.objects.filter(parent_links__parent=version, model__in=visible)
        .select_related(*related)
        .order_by("model__name", "number")
    )
    return {
        "version": _node(version),
        "branch": {"name": version.branch.name, "protected": version.branch.protected},
        "parents": [_node(p) for p in parents],
        "children": [_node(c) for c in children],
        "datasets": version.datasets,
        "code_version": version.code_version,
        "experiment_id": version.experiment_id,
    }


# Layout of the graph, in SVG user units.
NODE_W, NODE_H, GAP_Y, GAP_X, PAD = 210, 46, 14, 70, 10
MAX_CHARS = 28


def _short(text: Any, limit: int = MAX_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _version_url(node: dict[str, Any]) -> str:
    return reverse(
        "catalog:version",
        kwargs={"org": node["org"], "model": node["model"], "number": node["number"]},
    )


# Colours as presentation attributes, so the graph reads the same wherever it is shown
# (the page, a saved file): production in the site's bright green.
INK, MUTED, LINE, ACCENT, PRODUCTION = "#1d2327", "#5f6b73", "#9aa5ad", "#1f5fbf", "#00c853"
STYLES = {
    "self": ("#ffffff", ACCENT, "2.5", ""),
    "parent": ("#ffffff", LINE, "1", ""),
    "child": ("#ffffff", LINE, "1", ""),
    "dataset": ("#f1f3f5", LINE, "1", "4 3"),
    "code": ("#f1f3f5", LINE, "1", "4 3"),
}


def _box(
    x: int, y: int, kind: str, title: str, line1: str, line2: str, stage: str = ""
) -> SafeString:
    fill, stroke, width, dash = STYLES[kind]
    if stage == "production":
        fill = PRODUCTION
    return format_html(
        '<g class="lineage-node lineage-{}{}"><title>{}</title>'
        '<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{}" stroke="{}" '
        'stroke-width="{}" stroke-dasharray="{}"></rect>'
        '<text x="{}" y="{}" fill="{}" font-size="13" font-weight="600">{}</text>'
        '<text x="{}" y="{}" fill="{}" font-size="11">{}</text></g>',
        kind,
        f" lineage-stage-{stage}" if stage else "",
        title,
        x,
        y,
        NODE_W,
        NODE_H,
        fill,
        stroke,
        width,
        dash or "none",
        x + 10,
        y + 19,
        INK,
        _short(line1),
        x + 10,
        y + 36,
        INK if stage == "production" else MUTED,
        _short(line2, MAX_CHARS + 6),
    )


def _version_box(x: int, y: int, node: dict[str, Any], kind: str) -> SafeString:
    name = f"{node['model']} v{node['number']}"
    if node["label"]:
        name += f" ({node['label']})"
    branch = f"branch {node['branch']}" + (" (protected)" if node["protected"] else "")
    title = f"{name}, {branch}, {node['stage']}"
    box = _box(x, y, kind, title, name, f"{branch} · {node['stage']}", node["stage"])
    return format_html('<a href="{}" aria-label="{}">{}</a>', _version_url(node), title, box)


def _inputs(lineage: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(kind, title, line 1, line 2) of the dataset and code-version nodes."""
    found = []
    for dataset in lineage["datasets"]:
        version = dataset.get("version") or dataset.get("digest") or ""
        title = f"dataset {dataset.get('name', '')} {version} {dataset.get('uri', '')}".strip()
        found.append(("dataset", title, f"dataset {dataset.get('name', '')}", version))
    code = lineage["code_version"]
    if code:
        commit = str(code.get("commit", ""))[:12]
        title = f"code {code.get('repo', '')} {code.get('commit', '')} {code.get('path', '')}"
        found.append(("code", title.strip(), f"code {code.get('repo', '')}", commit))
    return found


def _edge(x1: int, y1: int, x2: int, y2: int) -> SafeString:
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1.5" '
        'marker-end="url(#lineage-arrow)"></line>',
        x1,
        y1,
        x2,
        y2,
        MUTED,
    )


def _column_y(count: int, height: int) -> list[int]:
    used = count * NODE_H + max(count - 1, 0) * GAP_Y
    top = (height - used) // 2
    return [top + i * (NODE_H + GAP_Y) for i in range(count)]


def lineage_svg(lineage: dict[str, Any]) -> SafeString:
    """Three columns: what this version comes from (parents, datasets, code version), the
    version itself, and its children. Edges run left to right."""
    inputs = _inputs(lineage)
    left = len(lineage["parents"]) + len(inputs)
    right = len(lineage["children"])
    rows = max(left, right, 1)
    height = rows * NODE_H + (rows - 1) * GAP_Y + 2 * PAD
    width = 3 * NODE_W + 2 * GAP_X + 2 * PAD
    xs = (PAD, PAD + NODE_W + GAP_X, PAD + 2 * (NODE_W + GAP_X))
    self_y = _column_y(1, height)[0]
    mid = self_y + NODE_H // 2
    parts: list[SafeString] = []
    for y, parent in zip(_column_y(left, height), lineage["parents"], strict=False):
        parts.append(_edge(xs[0] + NODE_W, y + NODE_H // 2, xs[1], mid))
        parts.append(_version_box(xs[0], y, parent, "parent"))
    input_ys = _column_y(left, height)[len(lineage["parents"]) :]
    for y, (kind, title, line1, line2) in zip(input_ys, inputs, strict=True):
        parts.append(_edge(xs[0] + NODE_W, y + NODE_H // 2, xs[1], mid))
        parts.append(_box(xs[0], y, kind, title, line1, line2))
    for y, child in zip(_column_y(right, height), lineage["children"], strict=True):
        parts.append(_edge(xs[1] + NODE_W, mid, xs[2], y + NODE_H // 2))
        parts.append(_version_box(xs[2], y, child, "child"))
    parts.append(_version_box(xs[1], self_y, lineage["version"], "self"))
    this = lineage["version"]
    description = (
        f"{this['model']} v{this['number']} on branch {this['branch']}: "
        f"{len(lineage['parents'])} parent(s), {len(inputs)} input(s), "
        f"{len(lineage['children'])} child(ren)"
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="lineage-graph" role="img" '
        'viewBox="0 0 {} {}" width="{}" height="{}" '
        'aria-labelledby="lineage-graph-title">'
        '<title id="lineage-graph-title">{}</title>'
        '<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="{}"></path></marker></defs>{}</svg>',
        width,
        height,
        width,
        height,
        description,
        MUTED,
        format_html_join("", "{}", ((part,) for part in parts)),
    )
