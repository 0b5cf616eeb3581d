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

import datetime as dt
import json
import math
import re
import unicodedata
from dataclasses import dataclass
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

MAX_LENGTH = 2000
MAX_DEPTH = 32
MAX_COMPARISONS = 100
MAX_NUMBER = 2**31 - 1  # version numbers are PositiveIntegerField

COMPARISON_OPS = ("==", "!=", "<=", ">=", "<", ">", "~")
ORDER_OPS = ("<", "<=", ">", ">=")
KEYWORDS = ("and", "or", "not", "in")

PLAIN_FIELDS = (
    "stage",
    "lock_level",
    "branch",
    "label",
    "framework",
    "flavor",
    "number",
    "digest",
    "created_at",
    "alias",
    "flagged",
    "model",
)
KEYED_FIELDS = ("tags", "metrics", "params")
KNOWN_FIELDS = (*PLAIN_FIELDS, *(f"{f}.<key>" for f in KEYED_FIELDS))


# --- the AST -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    kind: str  # "number", "string", "word" or "bool"
    value: Any  # int/float, str, or bool
    text: str  # as written (for words and numbers), to compare as text
    pos: int  # 0-based offset


@dataclass(frozen=True)
class Field:
    name: str  # one of PLAIN_FIELDS or KEYED_FIELDS
    key: str | None
    pos: int

    def __str__(self) -> str:
        return f"{self.name}.{self.key}" if self.key is not None else self.name


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # one of COMPARISON_OPS, "in" or "not in"
    values: tuple[Literal, ...]  # one value, or the list of `in`
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class And:
    operands: tuple


@dataclass(frozen=True)
class Or:
    operands: tuple


Node = Comparison | Not | And | Or


def _fail(pos: int, message: str, **details: Any) -> Invalid:
    return Invalid(
        f"at column {pos + 1}: {message}",
        details={"position": pos, "column": pos + 1, **details},
    )


# --- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "op", "(", ")", ",", "string", "number", "word", "end"
    text: str
    value: Any
    pos: int

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the query"
        if self.kind == "string":
            return f"the string {json.dumps(self.value)[:40]}"
        return f"'{self.text[:40]}'"


_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")
_SPACE = " \t\r\n"


def tokenize(text: str) -> list[Token]:
    # Anywhere, strings included: PostgreSQL refuses NUL and lone surrogates in text, and
    # nobody means a control character in a query.
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in _SPACE:
            raise _fail(i, f"unexpected control character {ch!r}")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        two = text[i : i + 2]
        if two in ("==", "!=", "<=", ">="):
            tokens.append(Token("op", two, two, i))
            i += 2
        elif ch in "<>~":
            tokens.append(Token("op", ch, ch, i))
            i += 1
        elif ch == "=":
            raise _fail(i, "expected '==' (a single '=' is not an operator)")
        elif ch in "(),":
            tokens.append(Token(ch, ch, ch, i))
            i += 1
        elif ch == '"':
            i = _read_string(text, i, tokens)
        elif m := (_WORD.match(text, i) or _NUMBER.match(text, i)):
            # A word that is all number is a number: `1.4` is one, `1.4.0` and `prod-eu` not.
            word = m.group()
            if _NUMBER.fullmatch(word):
                tokens.append(Token("number", word, _number(word, i), i))
            else:
                tokens.append(Token("word", word, word, i))
            i = m.end()
        else:
            raise _fail(i, f"unexpected character {ch!r}")
    # The end is where the text ends, trailing blanks aside.
    tokens.append(Token("end", "", None, len(text.rstrip(_SPACE))))
    return tokens


def _read_string(text: str, start: int, tokens: list[Token]) -> int:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in '"\\':
                raise _fail(i, 'expected \\" or \\\\ after a backslash in a string')
            chars.append(text[i + 1])
            i += 2
        elif ch == '"':
            tokens.append(Token("string", text[start : i + 1], "".join(chars), start))
            return i + 1
        else:
            chars.append(ch)
            i += 1
    raise _fail(start, "expected a closing '\"' for the string that starts here")


def _number(text: str, pos: int) -> int | float:
    try:
        value: int | float = int(text)
    except ValueError:
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(pos, f"the number {text[:40]} is out of range")
    return value


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def keyword(self, word: str, offset: int = 0) -> bool:
        token = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return token.kind == "word" and token.text.lower() == word

    def advance(self) -> Token:
        token = self.token
        self.i += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        if self.token.kind != kind:
            raise _fail(self.token.pos, f"expected {what}, found {self.token.describe()}")
        return self.advance()

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(pos, f"the query nests deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise _fail(
                self.token.pos,
                f"expected 'and', 'or' or the end of the query, found {self.token.describe()}",
            )
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.keyword("and"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        if self.keyword("not"):
            self.nest(self.advance().pos)
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        if self.token.kind == "(":
            self.nest(self.advance().pos)
            node = self.or_expr()
            self.expect(")", "')' or 'and' or 'or'")
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.field()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _fail(field.pos, f"the query holds more than {MAX_COMPARISONS} comparisons")
        if self.keyword("in") or (self.keyword("not") and self.keyword("in", 1)):
            op = "not in" if self.keyword("not") else "in"
            pos = self.advance().pos
            if op == "not in":
                self.advance()
            return Comparison(field, op, self.value_list(), pos)
        if self.token.kind != "op":
            raise _fail(
                self.token.pos,
                f"expected an operator (==, !=, <, <=, >, >=, ~ or in) after {field}, "
                f"found {self.token.describe()}",
            )
        op_token = self.advance()
        return Comparison(field, op_token.text, (self.value(op_token),), op_token.pos)

    def field(self) -> Field:
        token = self.token
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            raise _fail(token.pos, f"expected a field name, found {token.describe()}")
        self.advance()
        name, dot, key = token.text.partition(".")
        if name in KEYED_FIELDS:
            if not dot or not key:
                raise _fail(token.pos, f"expected a key after '{name}.', as in {name}.<key>")
            return Field(name, key, token.pos)
        if name in PLAIN_FIELDS and not dot:
            return Field(name, None, token.pos)
        raise _fail(
            token.pos,
            f"unknown field '{token.text[:60]}'; known fields: {', '.join(KNOWN_FIELDS)}",
            field=token.text[:60],
        )

    def value(self, after: Token) -> Literal:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Literal("number", token.value, token.text, token.pos)
        if token.kind == "string":
            self.advance()
            return Literal("string", token.value, token.value, token.pos)
        if token.kind == "word" and token.text.lower() not in KEYWORDS:
            self.advance()
            if token.text.lower() in ("true", "false"):
                return Literal("bool", token.text.lower() == "true", token.text, token.pos)
            return Literal("word", token.text, token.text, token.pos)
        raise _fail(
            token.pos,
            f"expected a value after '{after.text}', found {token.describe()}",
        )

    def value_list(self) -> tuple[Literal, ...]:
        opening = self.expect("(", "'(' to open the list of values after 'in'")
        values = [self.value(opening)]
        while self.token.kind == ",":
            values.append(self.value(self.advance()))
        self.expect(")", "',' or ')' to close the list of values")
        return tuple(values)


def parse(text: str) -> Node:
    """The AST of a query; Invalid (with the column) when it is malformed."""
    if not isinstance(text, str):
        raise Invalid("a query is text")
    if len(text) > MAX_LENGTH:
        raise _fail(MAX_LENGTH, f"the query is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise _fail(0, "expected a field name, found an empty query")
    return _Parser(text).parse()


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
    return _fail(pos, f"'{op}' does not apply to {field}; expected {allowed}")


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
            raise _fail(
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
            raise _fail(
                value.pos, f"expected a whole number for {field}, found {value.text[:40]!r}"
            )
        if not 0 <= value.value <= MAX_NUMBER:
            raise _fail(value.pos, f"the version number {value.text[:40]} is out of range")
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
        raise _fail(value.pos, f'expected a date such as "2026-01-01", found {text[:40]!r}')
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text)
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return start, start + dt.timedelta(days=1)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?", text):
            raise ValueError(text)
        moment = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise _fail(
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
        raise _fail(value.pos, f"expected true or false for flagged, found {value.text[:40]!r}")
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
            raise _fail(first.pos, f"'~' compares text; {field} holds numbers")
        text = Q(IContains(_json_text(column, key), _text_value(field, first)))
        return _json_type_is(column, key, _STRING_TYPES) & text
    if column == "tags" or (column == "params" and op not in ORDER_OPS):
        if op in ORDER_OPS:
            raise _ops_error(field, op, comparison.pos, "==, !=, ~ or in (tags are text)")
        return _expand(comparison, lambda v: _json_equal(column, key, v))
    # Numbers: metrics always, params with an order.
    for value in comparison.values:
        if value.kind != "number":
            raise _fail(value.pos, f"expected a number for {field}, found {value.text[:40]!r}")
    if op in ORDER_OPS:
        return _lookup(_json_number(column, key), op, float(first.value))
    return _expand(comparison, lambda v: _lookup(_json_number(column, key), "==", float(v.value)))


def _json_equal(column: str, key: str, value: Literal) -> Q:
    if column == "tags" or value.kind in ("string", "word"):
        text = _text_value(Field(column, key, value.pos), value)
        if connection.vendor == "postgresql":
            # The same test as containment (`tags @> '{"team": "risk"}'`), which the GIN
            # index on tags answers (migration 0006) where the other form reads every row.
            return Q(**{f"{column}__contains": {key: text}})
        return _json_type_is(column, key, _STRING_TYPES) & Q(Exact(_json_text(column, key), text))
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
