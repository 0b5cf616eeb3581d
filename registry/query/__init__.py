"""The query language of SPEC 3.9, shared by the API (`?q=`), the catalog search box and the
Python client (`versions.find(...)`).

    stage in (staging, production) and metrics.auc >= 0.9 and not tags.team == "nlp"

`parse(text)` gives an AST, `compile_query(text)` a `Q` over `ModelVersion`, and
`search_versions(queryset, text)` applies it. Every error is `registry.errors.Invalid` with
the 1-based column and what was expected. The Q holds ORM lookups and expressions only (no
`raw()`, no `extra()`); user values always travel as query parameters. It says nothing about
permissions: callers start from `ModelVersion.objects.visible_to(user)`.

Semantics worth knowing:
- `a != b` is exactly `not (a == b)`, so `tags.team != "nlp"` includes versions without the
  tag; `<`, `<=`, `>`, `>=` and `~` on a missing key (or a null label) are false.
- `params.<key>` compares numerically with a number (only numeric params match), as text
  with a string or a bare word, and as a boolean with true/false.
- `created_at == "2026-01-01"` is the whole UTC day; with a time it is that instant.
- `flagged == true` means "has an open flag" (a `Flag` without `resolved_at`); a version
  whose flags are all resolved is not flagged.
"""

from registry.query.compile import (
    EQUALITY_COLUMNS,
    column_equalities,
    compile_node,
    compile_query,
    flag_condition,
    json_text_equals,
    search_versions,
)
from registry.query.parse import (
    COMPARISON_OPS,
    KEYED_FIELDS,
    KNOWN_FIELDS,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NUMBER,
    PLAIN_FIELDS,
    And,
    Comparison,
    Field,
    Literal,
    Node,
    Not,
    Or,
    Token,
    parse,
    tokenize,
)

__all__ = [
    "COMPARISON_OPS",
    "EQUALITY_COLUMNS",
    "KEYED_FIELDS",
    "KNOWN_FIELDS",
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NUMBER",
    "PLAIN_FIELDS",
    "And",
    "Comparison",
    "Field",
    "Literal",
    "Node",
    "Not",
    "Or",
    "Token",
    "column_equalities",
    "compile_node",
    "compile_query",
    "flag_condition",
    "json_text_equals",
    "parse",
    "search_versions",
    "tokenize",
]
