"""The technical documentation rendered as Markdown and JSON, and the display rule that the
page shares with them, so that the three formats cannot disagree (SPEC 3.10)."""

import json
import re
from typing import Any

MISSING = "Missing"


def filename(doc: dict[str, Any], extension: str) -> str:
    """The download's name: `<model>-v<n>-technical-documentation.<extension>`."""
    return f"{doc['model']}-v{doc['number']}-technical-documentation.{extension}"


def display(value: Any) -> str:
    """A value as the page and the Markdown show it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


# What Markdown or inline HTML may read as structure anywhere in a line, and at its start.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!~&])")
_MD_LINE_START = re.compile(r"^(?:([-+=])|(\d+)([.)]))")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c|\x85")


def md_inline(value: Any) -> str:
    """User text on one line with every Markdown and HTML character escaped: it can neither
    open a link, tag, emphasis or code span nor split a table row."""
    text = _LINE_BREAKS.sub(" ", display(value)).strip()
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_line(value: Any) -> str:
    """User text as a line of its own: escaped, and unable to start a list or a heading."""
    return _MD_LINE_START.sub(
        lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", md_inline(value)
    )


def md_block(text: str, language: str = "text") -> list[str]:
    """User text kept exactly, in a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *_LINE_BREAKS.split(text), fence]


def _md_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(md_inline(c) for c in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(md_inline(cell) for cell in row) + " |" for row in rows]
    return lines


def _md_item(item: dict[str, Any]) -> list[str]:
    head = f"### {md_inline(item['label'])}"
    annex = f"_Annex IV {item['annex']}_"
    if item["missing"]:
        # Hints are the registry's own words, written in Markdown.
        return [head, "", annex, "", f"**{MISSING}**: {item['hint']}", ""]
    value, kind = item["value"], item["type"]
    body: list[str]
    if "empty" in item:
        body = [md_line(item["empty"])]
    elif kind == "table":
        body = _md_table(value["columns"], value["rows"])
    elif kind == "mapping":
        body = _md_table(["name", "value"], [[k, v] for k, v in value.items()])
    elif kind == "json":
        body = md_block(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True), "json")
    elif kind in ("text", "code"):
        body = md_block(value)
    else:
        body = [md_line(value)]
    return [head, "", annex, "", *body, ""]


def render_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"# {md_inline(doc['title'])}",
        "",
        f"{md_inline(doc['regulation'])}",
        "",
        f"- Digest: {md_inline(doc['digest'])}",
        f"- Generated at: {md_inline(doc['generated_at'])}",
        f"- Missing items: {len(doc['missing'])}",
        "",
    ]
    for section in doc["sections"]:
        lines += [
            f"## {md_inline(section['title'])}",
            "",
            f"_{md_inline(section['annex'])}_ · section `{section['id']}`",
            "",
        ]
        for item in section["items"]:
            lines += _md_item(item)
    return "\n".join(lines).rstrip("\n") + "\n"
