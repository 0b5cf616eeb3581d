"""The query language's grammar: tokens, the AST and the parser (no database)."""

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from registry.errors import Invalid

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


def fail(pos: int, message: str, **details: Any) -> Invalid:
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
            raise fail(i, f"unexpected control character {ch!r}")
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
            raise fail(i, "expected '==' (a single '=' is not an operator)")
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
            raise fail(i, f"unexpected character {ch!r}")
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
                raise fail(i, 'expected \\" or \\\\ after a backslash in a string')
            chars.append(text[i + 1])
            i += 2
        elif ch == '"':
            tokens.append(Token("string", text[start : i + 1], "".join(chars), start))
            return i + 1
        else:
            chars.append(ch)
            i += 1
    raise fail(start, "expected a closing '\"' for the string that starts here")


def _number(text: str, pos: int) -> int | float:
    try:
        value: int | float = int(text)
    except ValueError:
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(pos, f"the number {text[:40]} is out of range")
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
            raise fail(self.token.pos, f"expected {what}, found {self.token.describe()}")
        return self.advance()

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise fail(pos, f"the query nests deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise fail(
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
            raise fail(field.pos, f"the query holds more than {MAX_COMPARISONS} comparisons")
        if self.keyword("in") or (self.keyword("not") and self.keyword("in", 1)):
            op = "not in" if self.keyword("not") else "in"
            pos = self.advance().pos
            if op == "not in":
                self.advance()
            return Comparison(field, op, self.value_list(), pos)
        if self.token.kind != "op":
            raise fail(
                self.token.pos,
                f"expected an operator (==, !=, <, <=, >, >=, ~ or in) after {field}, "
                f"found {self.token.describe()}",
            )
        op_token = self.advance()
        return Comparison(field, op_token.text, (self.value(op_token),), op_token.pos)

    def field(self) -> Field:
        token = self.token
        if token.kind != "word" or token.text.lower() in KEYWORDS:
            raise fail(token.pos, f"expected a field name, found {token.describe()}")
        self.advance()
        name, dot, key = token.text.partition(".")
        if name in KEYED_FIELDS:
            if not dot or not key:
                raise fail(token.pos, f"expected a key after '{name}.', as in {name}.<key>")
            return Field(name, key, token.pos)
        if name in PLAIN_FIELDS and not dot:
            return Field(name, None, token.pos)
        raise fail(
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
        raise fail(
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
        raise fail(MAX_LENGTH, f"the query is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise fail(0, "expected a field name, found an empty query")
    return _Parser(text).parse()
