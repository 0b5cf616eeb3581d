"""The query language compiled to ORM filters over ModelVersion (no raw SQL)."""

import datetime as dt
import functools
import json
import re
from typing import Any

from django.db import NotSupportedError, connection
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)

from registry.errors import Invalid
from registry.models import Alias, Flag, LockLevel, Stage
from registry.query.parse import (
    MAX_NUMBER,
    ORDER_OPS,
    And,
    Comparison,
    Field,
    Literal,
    Node,
    Not,
    fail,
    parse,
)

# --- JSON keys, the same on SQLite and PostgreSQL ---------------------------------------------


class _JSONKey(Func):
    """A key of a JSON column, as text (`->>`) or as its JSON type. The key is a parameter,
    always an object key (never an array index); only SQLite and PostgreSQL are supported."""

    output_field = CharField()

    def __init__(self, column: str, key: str, *, part: str):
        super().__init__(F(column))
        self.key, self.part = key, part

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("the query language supports SQLite and PostgreSQL")

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        if self.part == "type":
            return f"JSONB_TYPEOF({column} -> %s)", (*params, self.key)
        return f"({column} ->> %s)", (*params, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        function = "JSON_TYPE" if self.part == "type" else "JSON_EXTRACT"
        return f"{function}({column}, %s)", (*params, "$." + json.dumps(self.key))


# JSON types as PostgreSQL (jsonb_typeof) and SQLite (json_type) name them.
_NUMBER_TYPES = ("number", "integer", "real")
_STRING_TYPES = ("string", "text")


def _json_type_is(column: str, key: str, types: tuple[str, ...]) -> Q:
    # Never NULL (a missing key is false), so that `not` is the exact complement.
    json_type = _JSONKey(column, key, part="type")
    return Q(IsNull(json_type, False)) & Q(In(json_type, list(types)))


def _json_text(column: str, key: str) -> _JSONKey:
    return _JSONKey(column, key, part="text")


def _json_number(column: str, key: str) -> Case:
    # CASE, so that PostgreSQL casts only numbers (a string would make the cast fail).
    return Case(
        When(
            _json_type_is(column, key, _NUMBER_TYPES),
            then=Cast(_json_text(column, key), FloatField()),
        ),
        default=Value(None),
        output_field=FloatField(),
    )


_LOOKUPS = {
    "==": Exact,
    "<": LessThan,
    "<=": LessThanOrEqual,
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
}


def _lookup(expression, op: str, value: Any) -> Q:
    """`expression op value`, false (never NULL) when the expression is NULL, so that `not`
    is the exact complement."""
    return Q(IsNull(expression, False)) & Q(_LOOKUPS[op](expression, value))


# --- compiler ------------------------------------------------------------------------------


def _ops_error(field: Field, op: str, pos: int, allowed: str) -> Invalid:
    return fail(pos, f"'{op}' does not apply to {field}; expected {allowed}")


def _expand(comparison: Comparison, one) -> Q:
    """`==`, `!=`, `in` and `not in` in terms of a function giving the `==` of one value."""
    op, values = comparison.op, comparison.values
    if op in ("in", "not in"):
        q = Q(pk__in=[])
        for value in values:
            q |= one(value)
        return ~q if op == "not in" else q
    q = one(values[0])
    return ~q if op == "!=" else q


def _enum(comparison: Comparison, choices: list[str], column: str) -> Q:
    field, op = comparison.field, comparison.op
    words = []
    for value in comparison.values:
        word = str(value.text).lower()
        if value.kind not in ("word", "string") or word not in choices:
            raise fail(
                value.pos,
                f"expected one of {', '.join(choices)} for {field}, found {value.text[:40]!r}",
            )
        words.append(word)
    if op in ORDER_OPS:
        if field.name != "lock_level":
            raise _ops_error(field, op, comparison.pos, "==, != or in")
        rank = LockLevel.rank(words[0])
        test = {
            "<": lambda r: r < rank,
            "<=": lambda r: r <= rank,
            ">": lambda r: r > rank,
            ">=": lambda r: r >= rank,
        }[op]
        return Q(**{f"{column}__in": [c for c in choices if test(LockLevel.rank(c))]})
    if op == "~":
        raise _ops_error(field, op, comparison.pos, "==, !=, in or an order (<, >=, ...)")
    by_text = {v.pos: w for v, w in zip(comparison.values, words, strict=True)}
    return _expand(comparison, lambda v: Q(**{column: by_text[v.pos]}))


def _text_value(field: Field, value: Literal) -> str:
    if value.kind == "bool":
        return value.text.lower()
    return str(value.text)


def _text(comparison: Comparison, column: str) -> Q:
    field, op = comparison.field, comparison.op
    if op in ORDER_OPS:
        raise _ops_error(field, op, comparison.pos, "==, !=, ~ or in")
    if op == "~":
        return Q(**{f"{column}__icontains": _text_value(field, comparison.values[0])})
    return _expand(comparison, lambda v: Q(**{column: _text_value(field, v)}))


def _number_field(comparison: Comparison) -> Q:
    field, op = comparison.field, comparison.op
    for value in comparison.values:
        if value.kind != "number" or not isinstance(value.value, int):
            raise fail(value.pos, f"expected a whole number for {field}, found {value.text[:40]!r}")
        if not 0 <= value.value <= MAX_NUMBER:
            raise fail(value.pos, f"the version number {value.text[:40]} is out of range")
    if op == "~":
        raise _ops_error(field, op, comparison.pos, "==, !=, <, <=, >, >= or in")
    if op in ORDER_OPS:
        suffix = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
        return Q(**{f"number__{suffix}": comparison.values[0].value})
    return _expand(comparison, lambda v: Q(number=v.value))


def _instant(value: Literal) -> tuple[dt.datetime, dt.datetime | None]:
    """The instant a date or datetime names, and for a date the start of the next day."""
    text = str(value.text)
    if value.kind not in ("string", "word"):
        raise fail(value.pos, f'expected a date such as "2026-01-01", found {text[:40]!r}')
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start, start + dt.timedelta(days=1)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?", text):
            raise ValueError(text)
        moment = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise fail(
            value.pos,
            f'expected an ISO date or time such as "2026-01-01" or "2026-01-01T12:00:00Z", '
            f"found {text[:40]!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment, None


def _created_at(comparison: Comparison) -> Q:
    field, op = comparison.field, comparison.op
    if op in ("~", "in", "not in"):
        raise _ops_error(field, op, comparison.pos, "==, !=, <, <=, >, >=")
    start, next_day = _instant(comparison.values[0])
    if next_day is None:
        suffix = {"==": "exact", "!=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
        q = Q(**{f"created_at__{suffix[op]}": start})
        return ~q if op == "!=" else q
    # A date is its whole (UTC) day: `> "2026-01-01"` starts on the 2nd.
    by_op = {
        "==": Q(created_at__gte=start, created_at__lt=next_day),
        "!=": ~Q(created_at__gte=start, created_at__lt=next_day),
        "<": Q(created_at__lt=start),
        "<=": Q(created_at__lt=next_day),
        ">": Q(created_at__gte=next_day),
        ">=": Q(created_at__gte=start),
    }
    return by_op[op]


def _alias(comparison: Comparison) -> Q:
    field, op = comparison.field, comparison.op
    if op in ORDER_OPS:
        raise _ops_error(field, op, comparison.pos, "==, !=, ~ or in")
    aliases = Alias.objects.filter(version=OuterRef("pk"))
    if op == "~":
        return Q(Exists(aliases.filter(name__icontains=comparison.values[0].text)))
    names = [_text_value(field, v) for v in comparison.values]
    found = Q(Exists(aliases.filter(name__in=names)))
    return ~found if op in ("!=", "not in") else found


def flag_condition() -> Q:
    """Versions with an open flag (SPEC 3.10): one EXISTS subquery, no duplicate rows."""
    return Q(Exists(Flag.objects.open().filter(version=OuterRef("pk"))))


def _flagged(comparison: Comparison) -> Q:
    field, op = comparison.field, comparison.op
    if op not in ("==", "!="):
        raise _ops_error(field, op, comparison.pos, "== or !=")
    value = comparison.values[0]
    if value.kind != "bool":
        raise fail(value.pos, f"expected true or false for flagged, found {value.text[:40]!r}")
    wanted = value.value if op == "==" else not value.value
    q = flag_condition()
    return q if wanted else ~q


def _keyed(comparison: Comparison) -> Q:
    field, op = comparison.field, comparison.op
    column, key = field.name, field.key
    assert key is not None
    first = comparison.values[0]
    if op == "~":
        if first.kind == "number" and column == "metrics":
            raise fail(first.pos, f"'~' compares text; {field} holds numbers")
        text = Q(IContains(_json_text(column, key), _text_value(field, first)))
        return _json_type_is(column, key, _STRING_TYPES) & text
    if column == "tags" or (column == "params" and op not in ORDER_OPS):
        if op in ORDER_OPS:
            raise _ops_error(field, op, comparison.pos, "==, !=, ~ or in (tags are text)")
        return _expand(comparison, lambda v: _json_equal(column, key, v))
    # Numbers: metrics always, params with an order.
    for value in comparison.values:
        if value.kind != "number":
            raise fail(value.pos, f"expected a number for {field}, found {value.text[:40]!r}")
    if op in ORDER_OPS:
        return _lookup(_json_number(column, key), op, float(first.value))
    return _expand(comparison, lambda v: _lookup(_json_number(column, key), "==", float(v.value)))


def json_text_equals(column: str, key: str, text: str) -> Q:
    """The key `key` of the JSON column `column` holds the string `text` (a missing key, or
    another type, does not). On PostgreSQL the same test as containment
    (`tags @> '{"team": "risk"}'`), which the GIN index on tags answers (migration 0006)
    where the other form reads every row."""
    if connection.vendor == "postgresql":
        return Q(**{f"{column}__contains": {key: text}})
    return _json_type_is(column, key, _STRING_TYPES) & Q(Exact(_json_text(column, key), text))


def _json_equal(column: str, key: str, value: Literal) -> Q:
    if column == "tags" or value.kind in ("string", "word"):
        return json_text_equals(column, key, _text_value(Field(column, key, value.pos), value))
    if value.kind == "bool":
        # SQLite names the type true/false; PostgreSQL says boolean, and ->> gives the word.
        word = "true" if value.value else "false"
        return _json_type_is(column, key, (word,)) | (
            _json_type_is(column, key, ("boolean",)) & Q(Exact(_json_text(column, key), word))
        )
    return _lookup(_json_number(column, key), "==", float(value.value))


_SIMPLE_TEXT = {
    "branch": "branch__name",
    "label": "label",
    "framework": "framework",
    "flavor": "flavor",
    "digest": "digest",
    "model": "model__name",
}


def _compile_comparison(comparison: Comparison) -> Q:
    name = comparison.field.name
    if name == "stage":
        return _enum(comparison, list(Stage.values), "stage")
    if name == "lock_level":
        return _enum(comparison, list(LockLevel.values), "lock_level")
    if name in _SIMPLE_TEXT:
        return _text(comparison, _SIMPLE_TEXT[name])
    if name == "number":
        return _number_field(comparison)
    if name == "created_at":
        return _created_at(comparison)
    if name == "alias":
        return _alias(comparison)
    if name == "flagged":
        return _flagged(comparison)
    return _keyed(comparison)


def compile_node(node: Node) -> Q:
    if isinstance(node, Comparison):
        return _compile_comparison(node)
    if isinstance(node, Not):
        return ~compile_node(node.operand)
    combined = Q()
    for operand in node.operands:
        q = compile_node(operand)
        combined = (combined & q) if isinstance(node, And) else (combined | q)
    return combined


def compile_query(text: str) -> Q:
    """A Q over ModelVersion for the query `text`; Invalid with the column when malformed."""
    return compile_node(parse(text))


def search_versions(queryset: QuerySet, text: str | None) -> QuerySet:
    """`queryset` narrowed by the query `text` (a blank query narrows nothing). Pass
    `ModelVersion.objects.visible_to(user)` (or a model's versions from it): the query
    language never widens what the caller may view."""
    if text is None or not text.strip():
        return queryset
    return queryset.filter(compile_query(text))


# The fields whose `==` is their column's plain equality (a word of a fixed set).
EQUALITY_COLUMNS = ("stage", "lock_level")


def column_equalities(text: str | None) -> dict[str, str] | None:
    """The query `text` as plain column equalities when it is only that: `stage ==
    production`, or an `and` of such comparisons of EQUALITY_COLUMNS, each column once
    ({"stage": "production"}); {} for a blank query; None for any other query. Invalid for
    a malformed one, as compile_query says. What compile_query would filter by, for a
    caller that reads such a page in one plain statement."""
    if text is None or not text.strip():
        return {}
    found = _equalities(text)
    return None if found is None else dict(found)


# A pipeline asks the same few queries again and again: each is parsed once per process.
@functools.lru_cache(maxsize=256)
def _equalities(text: str) -> tuple[tuple[str, str], ...] | None:
    node = parse(text)
    compile_node(node)  # refuses what compile_query refuses (an unknown stage, ...)
    found: dict[str, str] = {}
    for comparison in node.operands if isinstance(node, And) else (node,):
        if (
            not isinstance(comparison, Comparison)
            or comparison.op != "=="
            or comparison.field.name not in EQUALITY_COLUMNS
            or comparison.field.name in found
        ):
            return None
        found[comparison.field.name] = str(comparison.values[0].text).lower()
    return tuple(found.items())
