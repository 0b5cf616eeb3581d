"""Technical documentation of a version, organised along the EU AI Act's Annex IV (SPEC 3.10).

`technical_documentation` builds one plain-JSON document, the single source that the page,
the Markdown and the JSON downloads all render. Each section names the Annex IV points it
answers; each item is a value or an explicit missing marker with a hint of what to record,
so that a reviewer sees the gap. What the registry cannot know (risk management, standards,
the EU declaration, ...) is always listed as missing. The document is read in a fixed number
of queries, whatever the number of events, requests, flags or versions.
"""

from compliance.build import REGULATION, technical_documentation
from compliance.render import (
    MISSING,
    display,
    filename,
    md_block,
    md_inline,
    md_line,
    render_json,
    render_markdown,
)

__all__ = [
    "MISSING",
    "REGULATION",
    "display",
    "filename",
    "md_block",
    "md_inline",
    "md_line",
    "render_json",
    "render_markdown",
    "technical_documentation",
]
