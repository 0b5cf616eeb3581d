"""MLflow's search syntax for the registry, compiled to ORM filters (never raw SQL).

A filter is comparisons joined by AND (MLflow has no OR here): `name = 'fraud'`,
`name LIKE 'fr%'`, `tags.team = 'risk'`, tags.`a key` ILIKE '%x%', `version_number > 3`,
`run_id IN ('a', 'b')`. `order_by` is a list of `key [ASC|DESC]`. Page tokens are offsets,
as MLflow's own server gives them. The keys and operators are MLflow's
(mlflow/utils/search_utils.py, SearchModelUtils and SearchModelVersionUtils).
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from mlflow_api.mapping import RUN_TAGS
from registry.errors import Invalid
from registry.query import json_text_equals

TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|<=|>=|=|<|>|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]*`|"[^"]*"|[A-Za-z0-9_.\-]+))?)
    )""",
    re.VERBOSE,
)
TEXT_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
TAG_OPS = ("=", "!=", "LIKE", "ILIKE")
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
# MLflow's client adds `tags.`mlflow.prompt.is_prompt` != 'true'` to every model search, and
# MLflow's server reads a model without that tag as one whose tag is 'false'.
PROMPT_TAG = "mlflow.prompt.is_prompt"
MAX_NUMBER = 2**31 - 1  # a version number's column


@dataclass(frozen=True)
class Comparison:
    kind: str  # "attribute" or "tag"
    key: str
    op: str
    value: Any  # a string, a number, or a list of strings for IN


def _tokens(text: str) -> list[tuple[str, str, int]]:
    found, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = TOKEN.match(text, at)
        if match is None:
            start = len(text) - len(text[at:].lstrip())
            raise Invalid(f"invalid filter at position {start}: unexpected {text[start:][:20]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind), match.start(kind)))
        at = match.end()
    return found


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise Invalid(f"invalid filter: expected {expected} at the end of {self.text!r}")
        self.at += 1
        return token

    def fail(self, token: tuple[str, str, int], expected: str) -> Invalid:
        return Invalid(
            f"invalid filter at position {token[2]}: expected {expected}, found {token[1]!r}"
        )

    def keyword(self, token: tuple[str, str, int] | None, *words: str) -> bool:
        return token is not None and token[0] == "word" and token[1].upper() in words

    def comparisons(self) -> list[Comparison]:
        found = [self.comparison()]
        while self.peek() is not None:
            token = self.take("AND")
            if self.keyword(token, "OR"):
                raise Invalid("MLflow's search filters join comparisons with AND only, not OR")
            if not self.keyword(token, "AND"):
                raise self.fail(token, "AND")
            found.append(self.comparison())
        return found

    def comparison(self) -> Comparison:
        token = self.take("a key such as name or tags.<key>")
        if token[0] != "word":
            raise self.fail(token, "a key such as name or tags.<key>")
        kind, key = _identifier(token[1])
        op = self.operator()
        return Comparison(kind, key, op, self.value(op))

    def operator(self) -> str:
        token = self.take("a comparison operator")
        if token[0] == "op" and token[1] in ("=", "!=", "<>", "<", "<=", ">", ">="):
            return "!=" if token[1] == "<>" else token[1]
        if self.keyword(token, "LIKE", "ILIKE", "IN"):
            return token[1].upper()
        if self.keyword(token, "NOT") and self.keyword(self.peek(), "IN"):
            self.at += 1
            return "NOT IN"
        raise self.fail(token, "=, !=, <, <=, >, >=, LIKE, ILIKE, IN or NOT IN")

    def value(self, op: str) -> Any:
        if op in ("IN", "NOT IN"):
            return self.values()
        token = self.take("a value")
        if token[0] == "string":
            return _unquote(token[1])
        if token[0] == "number":
            return float(token[1]) if "." in token[1] else int(token[1])
        raise self.fail(token, "a quoted string or a number")

    def values(self) -> list[str]:
        opening = self.take("(")
        if opening[1] != "(":
            raise self.fail(opening, "a parenthesised list of quoted strings")
        found = []
        while True:
            token = self.take("a quoted string")
            if token[0] != "string":
                raise self.fail(token, "a quoted string")
            found.append(_unquote(token[1]))
            token = self.take(", or )")
            if token[1] == ")":
                return found
            if token[1] != ",":
                raise self.fail(token, ", or )")


def _identifier(word: str) -> tuple[str, str]:
    entity, dot, key = word.partition(".")
    if not dot:
        return "attribute", entity
    if entity not in ("attribute", "attributes", "tag", "tags"):
        raise Invalid(f"invalid entity type {entity!r}: use attribute or tags")
    if key[:1] in ("`", '"') and key[-1:] == key[:1] and len(key) > 1:
        key = key[1:-1]
    if not key:
        raise Invalid(f"{word!r} names no key")
    return ("attribute" if entity.startswith("attribute") else "tag"), key


def parse(text: str | None) -> list[Comparison]:
    if text is None or not text.strip():
        return []
    return _Parser(text).comparisons()


# --- to ORM filters ------------------------------------------------------------------------


def _like(pattern: str) -> str:
    """A SQL LIKE pattern (% any run, _ one character) as an anchored regular expression."""
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(r"[\s\S]*")
        elif char == "_":
            parts.append(r"[\s\S]")
        else:
            parts.append(re.escape(char))
    return "^" + "".join(parts) + "$"


def _text(lookup: str, comparison: Comparison, ops: tuple[str, ...]) -> Q:
    op, value = comparison.op, comparison.value
    if op not in ops:
        raise Invalid(f"{comparison.key} cannot be compared with {op}; use one of {', '.join(ops)}")
    if op in ("IN", "NOT IN"):
        found = Q(**{f"{lookup}__in": value})
        return found if op == "IN" else Q(**{f"{lookup}__isnull": False}) & ~found
    if not isinstance(value, str):
        raise Invalid(f"{comparison.key} is compared with a quoted string, not {value!r}")
    if op == "=":
        return Q(**{lookup: value})
    if op == "!=":
        # As MLflow: a row without the value matches neither = nor !=.
        return Q(**{f"{lookup}__isnull": False}) & ~Q(**{lookup: value})
    return Q(**{f"{lookup}__{'regex' if op == 'LIKE' else 'iregex'}": _like(value)})


def _tag_lookup(key: str) -> str:
    # KT() splits its argument at "__" and reads a key made of digits as a list index.
    if "__" in key or key.isdigit():
        raise Invalid(f"tag key {key!r} cannot be searched: it holds '__' or only digits")
    return f"tags__{key}"


def _tag(queryset: QuerySet, comparison: Comparison, index: int, ops=TAG_OPS) -> tuple[QuerySet, Q]:
    lookup = _tag_lookup(comparison.key)
    if (
        comparison.op == "="
        and isinstance(comparison.value, str)
        and comparison.key != PROMPT_TAG  # whose absence reads as 'false', below
    ):
        # Tags hold strings only: the query language's tag equality, which the tags' GIN
        # index answers on PostgreSQL.
        return queryset, json_text_equals("tags", comparison.key, comparison.value)
    name = f"mlflow_tag_{index}"
    # As text: a lookup on KT() itself would read the compared value as JSON.
    value = Cast(KT(lookup), TextField())
    if comparison.key == PROMPT_TAG:
        value = Coalesce(value, Value("false"), output_field=TextField())
    queryset = queryset.alias(**{name: value})
    return queryset, _text(name, comparison, ops)


def _number(lookup: str, comparison: Comparison) -> Q:
    op, value = comparison.op, comparison.value
    if op not in NUMBER_OPS:
        raise Invalid(f"{comparison.key} is a number: compare it with {', '.join(NUMBER_OPS)}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise Invalid(f"{comparison.key} is compared with a whole number, not {value!r}")
    if abs(value) > MAX_NUMBER:
        raise Invalid(f"{comparison.key} is compared with {value}, out of range")
    suffix = {"=": "", "<": "__lt", "<=": "__lte", ">": "__gt", ">=": "__gte"}
    if op == "!=":
        return ~Q(**{lookup: value})
    return Q(**{lookup + suffix[op]: value})


MODEL_KEYS = {"name": "name"}
VERSION_KEYS = {"name": "model__name", "source_path": "source_run"}


def filter_models(queryset: QuerySet, text: str | None) -> QuerySet:
    """Registered models matching MLflow's filter: `name` and `tags.<key>`."""
    condition = Q()
    for index, comparison in enumerate(parse(text)):
        if comparison.kind == "tag":
            queryset, q = _tag(queryset, comparison, index)
        elif comparison.key in MODEL_KEYS:
            q = _text(MODEL_KEYS[comparison.key], comparison, TEXT_OPS)
        else:
            raise Invalid(
                f"invalid attribute key {comparison.key!r}: registered models are searched by "
                "name and tags"
            )
        condition &= q
    return queryset.filter(condition)


def named_model(text: str | None) -> str | None:
    """The model a version filter names with `name = '...'` (MLflow's client searches one
    model's versions so), else None."""
    for comparison in parse(text):
        kind, key, op, value = comparison.kind, comparison.key, comparison.op, comparison.value
        if kind != "tag" and key == "name" and op == "=" and isinstance(value, str):
            return value
    return None


def names_only(text: str | None, name: str) -> bool:
    """Whether the version filter is `name = '<name>'` and nothing else."""
    return parse(text) == [Comparison("attribute", "name", "=", name)]


def filter_versions(queryset: QuerySet, text: str | None) -> QuerySet:
    """Model versions matching MLflow's filter: `name`, `version_number`, `run_id`,
    `source_path` and `tags.<key>`."""
    condition = Q()
    for index, comparison in enumerate(parse(text)):
        if comparison.kind == "tag":
            queryset, q = _tag(queryset, comparison, index)
        elif comparison.key == "run_id":
            run = Comparison("tag", RUN_TAGS["run_id"], comparison.op, comparison.value)
            queryset, q = _tag(queryset, run, index, TEXT_OPS)
        elif comparison.key == "version_number":
            q = _number("number", comparison)
        elif comparison.key in VERSION_KEYS:
            q = _text(VERSION_KEYS[comparison.key], comparison, TEXT_OPS)
        else:
            raise Invalid(
                f"invalid attribute key {comparison.key!r}: model versions are searched by "
                "name, version_number, run_id, source_path and tags"
            )
        condition &= q
    return queryset.filter(condition)


# --- order_by ---------------------------------------------------------------------------------

MODEL_ORDER = {
    "name": "name",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}
VERSION_ORDER = {
    "name": "model__name",
    "version_number": "number",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
}


def _order(order_by: list[str], columns: dict[str, str]) -> list[str]:
    found = []
    for clause in order_by:
        words = clause.split()
        if not 1 <= len(words) <= 2 or (
            len(words) == 2 and words[1].upper() not in ("ASC", "DESC")
        ):
            raise Invalid(f"invalid order_by clause {clause!r}: use '<key> ASC' or '<key> DESC'")
        kind, key = _identifier(words[0].strip("`"))
        if kind != "attribute" or key not in columns:
            raise Invalid(f"invalid order_by key {words[0]!r}: use one of {', '.join(columns)}")
        descending = len(words) == 2 and words[1].upper() == "DESC"
        found.append(("-" if descending else "") + columns[key])
    return found


def order_models(queryset: QuerySet, order_by: list[str]) -> QuerySet:
    keys = _order(order_by, MODEL_ORDER)
    if not any(k.lstrip("-") == "name" for k in keys):
        keys.append("name")  # MLflow's tie-breaker; names are unique in an org
    return queryset.order_by(*keys)


def order_versions(queryset: QuerySet, order_by: list[str]) -> QuerySet:
    keys = _order(order_by, VERSION_ORDER)
    # MLflow's tie-breakers: name ascending, then the newest version first.
    if not any(k.lstrip("-") == "model__name" for k in keys):
        keys.append("model__name")
    if not any(k.lstrip("-") == "number" for k in keys):
        keys.append("-number")
    return queryset.order_by(*keys)


# --- pages ------------------------------------------------------------------------------------


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page_request(params, default: int, maximum: int) -> tuple[int, int]:
    """(max_results, offset) of a search call: max_results from 1 to `maximum` (`default`
    when not given), and where its page_token says the page starts."""
    size = params.integer("max_results") or default
    if not 1 <= size <= maximum:
        raise Invalid(f"max_results must be from 1 to {maximum}, not {size}")
    return size, page_offset(params.text("page_token"))


def page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        found = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise Invalid("page_token is not one this server gave out") from None
    offset = found.get("offset") if isinstance(found, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 2**31:
        raise Invalid("page_token is not one this server gave out")
    return offset


def page(queryset: QuerySet, offset: int, size: int) -> tuple[list, str | None]:
    """One page of `queryset` and the token of the next (None on the last page)."""
    return page_of(list(queryset[offset : offset + size + 1]), offset, size)


def page_of(rows: list, offset: int, size: int) -> tuple[list, str | None]:
    """The page of `rows`, read from `offset` (with one row more than `size` when there
    are more), and the token of the next (None on the last page)."""
    if len(rows) > size:
        return rows[:size], page_token(offset + size)
    return rows, None
