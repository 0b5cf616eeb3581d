"""Querysets of a fixed shape, compiled to SQL once per database connection.

Building and compiling a queryset costs far more than running it on PostgreSQL: about 1 ms
of Python for a model fetch with its joins and a role subquery, where the round trip costs
0.1 ms. The paths every API call takes (token, model or version with the caller's role,
grants) keep their queryset, as the one statement of what they read, and run it here: the
first call on a connection builds the queryset with marker values in place of the
arguments, compiles it, and notes where each marker landed among the SQL parameters; every
later call binds its own values into those places and runs the same SQL. Rows come back
as the queryset itself would give them (select_related objects, annotations, values rows),
through Django's own converters and populators.

A shape whose SQL would hold a value inline, not as a parameter, is refused when it is
first compiled: the values of different calls must not share one SQL text.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections
from django.db.models import BooleanField, F, Func, JSONField, Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql import Query
from django.db.transaction import TransactionManagementError

_CACHE_ATTRIBUTE = "_modelvault_prepared"


def _marker(kind: type, index: int, variant: int) -> Any:
    # Small positive integers fit every integer column (an out-of-range one would let
    # Django drop the condition as always false); the two variants tell an argument's
    # places from constants that happen to be equal.
    if kind is int:
        return 1000 * (variant + 1) + index
    if kind is str:
        return f"\ue000prepared-{variant}-{index}\ue000"
    if kind is uuid.UUID:
        return uuid.UUID(int=(0xE000 + variant) << 64 | index)
    if kind is list:
        return _ListMarker()  # for AnyOf: known by identity, not by value
    raise TypeError(f"no marker for parameters of type {kind.__name__}")


class _ListMarker(list):
    """The marker of a list argument, which only AnyOf takes: its parameter carries the
    marker it was made from (`source`) and how to prepare another list the same way."""


class _Rebinds:
    """AnyOf's parameter made from a list marker: never sent, only rebound. It carries the
    marker it was made from (`source`), how each value is prepared for the database and how
    the prepared list is encoded (a list on PostgreSQL, or one text: a JSON array on SQLite,
    an array literal on PostgreSQL)."""

    source: _ListMarker
    _prepare: Callable[[Any], Any]
    _encode: Callable[[list[Any]], Any]

    @classmethod
    def of(cls, value: Any, source: Any, prepare: Callable, encode: Callable) -> Any:
        """`value` as sent, marked for rebinding when it was made from a marker."""
        if not isinstance(source, _ListMarker):
            return value
        bound = cls(value)
        bound.source, bound._prepare, bound._encode = source, prepare, encode
        return bound

    def rebind(self, values: list[Any]) -> Any:
        return self._encode([self._prepare(value) for value in values])


class _BoundList(_Rebinds, list):
    pass


class _BoundText(_Rebinds, str):
    pass


# Column types whose values' text never needs quoting in an array literal: a list of ids is
# then sent as one text ('{…}'::uuid[]), which psycopg does not have to adapt item by item.
_LITERAL_TYPES = frozenset({"uuid", "integer", "bigint", "smallint"})


def _array_literal(values: list[Any]) -> str:
    return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"


def _forms(marker: Any) -> list[tuple[Any, Callable[[Any], Any]]]:
    """How a marker may appear among the compiled parameters, and how to bind a value
    the same way (a UUID is sent as itself or, on SQLite, as hex)."""
    if isinstance(marker, uuid.UUID):
        return [(marker, lambda v: v), (marker.hex, lambda v: v.hex)]
    return [(marker, lambda v: v)]


def _same(value: Any, form: Any) -> bool:
    # The backend may send a value as a subclass of its type (psycopg's Int8 for a big
    # integer column): bound values are wrapped the same way.
    return isinstance(value, type(form)) and not isinstance(value, bool) and value == form


def _bind_as(value: Any, binder: Callable[[Any], Any]) -> Callable[[Any], Any]:
    wrap = type(value)
    if wrap in (int, str) or isinstance(value, uuid.UUID):
        return binder
    return lambda v: wrap(binder(v))


def _fast_json(field: JSONField) -> Callable[[Any, Any, Any], Any]:
    """JSONField.from_db_value with orjson, three to five times faster on the JSON columns of
    a page of versions; anything orjson refuses (an integer past 64 bits, NaN) and any
    field with a decoder of its own take Django's own path, so the values are the same."""
    slow = field.from_db_value

    def convert(value: Any, expression: Any, connection: Any) -> Any:
        if type(value) is str:
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return slow(value, expression, connection)

    return convert


def _converters(compiler) -> tuple[tuple[int, tuple[Callable, ...], Any], ...]:
    """What results_iter() would apply to each row, worked out once: (position, converters,
    expression) per column that has any."""
    fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
    if compiler.has_composite_fields(fields):
        raise ValueError("prepared queries do not read composite primary keys")
    found = []
    for position, (converters, expression) in compiler.get_converters(fields).items():
        field = getattr(expression, "output_field", None)
        converters = tuple(
            _fast_json(field)
            if isinstance(field, JSONField)
            and field.decoder is None
            and getattr(converter, "__func__", None) is JSONField.from_db_value
            else converter
            for converter in converters
        )
        found.append((position, converters, expression))
    return tuple(found)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, int, Callable[[Any], Any]], ...]  # (param, argument, binder)
    compiler: Any
    locks: bool
    converters: tuple[tuple[int, tuple[Callable, ...], Any], ...] = ()
    names: tuple[str, ...] = ()  # of a values() shape's columns
    # For model rows only.
    model: type[Model] | None = None
    init_list: tuple[str, ...] = ()
    model_span: tuple[int, int] = (0, 0)
    populators: tuple[Any, ...] = ()
    annotations: tuple[tuple[str, int], ...] = ()


class Prepared:
    """`Prepared(lambda user_id, name: Model.objects.filter(...), int, str)`: a queryset
    shape whose arguments have these types; `.objects(*args)` gives its model instances,
    `.rows(*args)` its rows (for `values()`/`values_list()` shapes)."""

    def __init__(self, build: Callable[..., QuerySet], *kinds: type, using: str = DEFAULT_DB_ALIAS):
        self._build = build
        self._kinds = kinds
        self._using = using

    def _compiled(self, shape: Any = None, kinds: tuple[type, ...] = ()):
        if len(kinds) != len(self._kinds):
            raise TypeError(f"expected {len(self._kinds)} arguments, got {len(kinds)}")
        connection = connections[self._using]
        cache = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
        compiled = cache.get(self)
        if compiled is None:
            compiled = cache[self] = self._compile(connection, self._build, self._kinds)
        return connection, compiled

    def _compile(self, connection, build: Callable[..., Any], kinds: tuple[type, ...]):
        compiled = []
        for variant in (0, 1):
            markers = [_marker(kind, i, variant) for i, kind in enumerate(kinds)]
            built = build(*markers)
            query = self._query(built)
            compiler = query.get_compiler(connection=connection)
            compiled.append((markers, query, compiler, *compiler.as_sql()))
        (markers, query, compiler, sql, params), (others, _, _, other_sql, other_params) = compiled
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError("this prepared query holds an argument inline in its SQL")
        slots, found = [], set()
        for position, (value, other) in enumerate(zip(params, other_params, strict=True)):
            for index, (marker, alternative) in enumerate(zip(markers, others, strict=True)):
                if isinstance(marker, _ListMarker):
                    if (
                        getattr(value, "source", None) is marker
                        and getattr(other, "source", None) is alternative
                    ):
                        slots.append((position, index, value.rebind))
                        found.add(index)
                    continue
                for (form, binder), (other_form, _) in zip(
                    _forms(marker), _forms(alternative), strict=True
                ):
                    if _same(value, form) and _same(other, other_form):
                        slots.append((position, index, _bind_as(value, binder)))
                        found.add(index)
        missing = sorted(set(range(len(markers))) - found)
        if missing:
            raise ValueError(f"arguments {missing} of this prepared query are not SQL parameters")
        base = {
            "sql": sql,
            "params": tuple(params),
            "slots": tuple(slots),
            "compiler": compiler,
            "locks": query.select_for_update,
            "converters": _converters(compiler) if compiler.select else (),
        }
        if compiler.klass_info is None or not query.default_cols:  # not model rows
            names = (*query.extra_select, *query.values_select, *query.annotation_select)
            return _Compiled(**base, names=names)
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        return _Compiled(
            **base,
            model=klass_info["model"],
            init_list=tuple(column[0].target.attname for column in select[start:end]),
            model_span=(start, end),
            populators=tuple(get_related_populators(klass_info, select, self._using)),
            annotations=tuple(compiler.annotation_col_map.items()),
        )

    def _query(self, built: Any) -> Query:
        return built.query

    def _bind(self, args: tuple[Any, ...], shape: Any = None) -> tuple[_Compiled, list[Any]]:
        connection, compiled = self._compiled(shape, tuple(type(a) for a in args))
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = list(compiled.params)
        for position, index, binder in compiled.slots:
            params[position] = binder(args[index])
        return compiled, params

    def _execute(self, args: tuple[Any, ...], cursor, shape: Any = None) -> _Compiled:
        compiled, params = self._bind(args, shape)
        cursor.execute(compiled.sql, params)
        return compiled

    def bound(self, *args: Any) -> tuple[str, list[Any]]:
        """The SQL and its parameters for these arguments, not run: for a statement that
        carries this one (a data-modifying WITH on PostgreSQL)."""
        compiled, params = self._bind(args)
        return compiled.sql, params

    def _run(self, args: tuple[Any, ...], shape: Any = None) -> tuple[_Compiled, list[Any]]:
        connection = connections[self._using]
        with connection.cursor() as cursor:
            compiled = self._execute(args, cursor, shape)
            rows = cursor.fetchall()
        if not compiled.converters:
            return compiled, rows
        converted = []
        for row in rows:
            row = list(row)
            for position, converters, expression in compiled.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            converted.append(row)
        return compiled, converted

    def rows(self, *args: Any) -> list[Any]:
        return self._run(args)[1]

    def objects(self, *args: Any) -> list[Model]:
        compiled, rows = self._run(args)
        if compiled.model is None:
            raise TypeError("this prepared query gives rows, not model instances")
        start, end = compiled.model_span
        found = []
        for row in rows:
            obj = compiled.model.from_db(self._using, compiled.init_list, row[start:end])
            for populator in compiled.populators:
                populator.populate(row, obj)
            for name, column in compiled.annotations:
                setattr(obj, name, row[column])
            found.append(obj)
        return found

    def first(self, *args: Any) -> Model | None:
        found = self.objects(*args)
        return found[0] if found else None


class AnyOf(Func):
    """`column` is one of `values`, with the list as one parameter (`= ANY(%s)` on
    PostgreSQL, `IN (SELECT value FROM json_each(%s))` on SQLite) where `__in` writes a
    placeholder per value and prepares each: for a page's 200 ids that costs more than the
    query. Use in filter(): `filter(AnyOf("version_id", ids))`; in a prepared query, with
    the argument type `list`: `Prepared(lambda ids: ....filter(AnyOf("version_id", ids)),
    list)`."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, column: str, values: list[Any]):
        super().__init__(F(column))
        self.source = values  # a prepared query's list marker, known by identity
        self.values = list(values)

    def _column_and_values(self, compiler, connection):
        column = self.source_expressions[0]
        sql, params = compiler.compile(column)
        field = column.output_field

        def prepare(value: Any) -> Any:
            return field.get_db_prep_value(value, connection)

        return sql, params, [prepare(value) for value in self.values], prepare

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("AnyOf supports PostgreSQL and SQLite")

    def as_postgresql(self, compiler, connection, **extra):
        sql, params, values, prepare = self._column_and_values(compiler, connection)
        db_type = self.source_expressions[0].output_field.db_type(connection)
        if db_type in _LITERAL_TYPES:
            text = _BoundText.of(_array_literal(values), self.source, prepare, _array_literal)
            return f"{sql} = ANY(%s::{db_type}[])", (*params, text)
        values = _BoundList.of(values, self.source, prepare, list)
        return f"{sql} = ANY(%s)", (*params, values)

    def as_sqlite(self, compiler, connection, **extra):
        sql, params, values, prepare = self._column_and_values(compiler, connection)
        array = _BoundText.of(json.dumps(values), self.source, prepare, json.dumps)
        return f"{sql} IN (SELECT value FROM json_each(%s))", (*params, array)


class PreparedShapes(Prepared):
    """A family of prepared queries: `build(shape, *args)` gives the queryset for a shape
    (anything hashable that decides the SQL: a query's text, a page size), and the argument
    types come from the arguments of each call. Each connection keeps the last `keep`
    shapes. `.dicts(*args, shape=...)` gives a values() shape's rows as dicts.

    For reads a client repeats (a CI job's search): the query language, the visibility
    test and the page's joins are compiled once, and later calls only bind the caller's
    ids and cursor."""

    def __init__(self, build: Callable[..., QuerySet], *, keep: int = 64, using=DEFAULT_DB_ALIAS):
        super().__init__(build, using=using)
        self._keep = keep

    def _compiled(self, shape: Any = None, kinds: tuple[type, ...] = ()):
        connection = connections[self._using]
        shapes = connection.__dict__.setdefault(_CACHE_ATTRIBUTE, {}).setdefault(self, {})
        key = (shape, kinds)
        compiled = shapes.get(key)
        if compiled is None:
            build = self._build
            compiled = self._compile(connection, lambda *markers: build(shape, *markers), kinds)
            if len(shapes) >= self._keep:
                del shapes[next(iter(shapes))]  # the oldest
            shapes[key] = compiled
        return connection, compiled

    def dicts(self, *args: Any, shape: Any) -> list[dict[str, Any]]:
        compiled, rows = self._run(args, shape)
        names = compiled.names
        # Rows may carry ordering columns past the named ones, as Django's own allow.
        return [dict(zip(names, row, strict=False)) for row in rows]
