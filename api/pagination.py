"""Cursor pagination: an opaque cursor holding the sort key of the last row served, so a
page costs the same whatever its depth and rows inserted meanwhile are not skipped."""

import base64
import json
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import IntegerField, Model, Q, QuerySet

from registry.errors import Invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise Invalid("the cursor is not one this API gave out") from None
    if (
        not isinstance(values, list)
        or len(values) != size
        or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values)
    ):
        raise Invalid("the cursor is not one this API gave out")
    return values


def _check_kinds(model: type[Model], keys: Sequence[str], values: list[Any]) -> None:
    """Refuse a cursor whose values are not what _value gives for the keys' fields (an int
    for an integer column, else text) or that a field cannot read: compared in the database,
    they would fail there (a 500), or be cast into a position no page ended at. The field's
    validators hold an integer to the column's range."""
    for key, value in zip(keys, values, strict=True):
        *path, name = key.lstrip("-").split("__")
        owner = model
        for step in path:
            owner = owner._meta.get_field(step).related_model
        field = owner._meta.get_field(name)
        kind = int if isinstance(field, IntegerField) else str
        try:
            if type(value) is not kind:
                raise ValidationError("wrong kind")
            field.run_validators(field.to_python(value))
        except ValidationError:
            raise Invalid("the cursor is not one this API gave out") from None


def _value(row: Any, key: str) -> Any:
    if isinstance(row, dict):  # a values() row
        value = row[key.lstrip("-")]
    else:
        value = reduce(getattr, key.lstrip("-").split("__"), row)
    return value if isinstance(value, (int, str)) else str(value)


def after_condition(keys: Sequence[str], values: list[Any]) -> Q:
    """Rows strictly after `values` in the order `keys` (each ascending, or '-' descending)."""
    condition = Q(pk__in=[])
    for i, key in enumerate(keys):
        step = Q(**{f"{k.lstrip('-')}": v for k, v in zip(keys[:i], values[:i], strict=True)})
        field = key.lstrip("-")
        lookup = "lt" if key.startswith("-") else "gt"
        condition |= step & Q(**{f"{field}__{lookup}": values[i]})
    return condition


def clean_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise Invalid("limit must be at least 1")
    return min(limit, MAX_LIMIT)


def paginate(
    queryset: QuerySet,
    *,
    keys: Sequence[str],
    cursor: str | None,
    limit: int | None,
    render: Callable[[Any], Any] | None = None,
    render_all: Callable[[list[Any]], list[Any]] | None = None,
) -> dict[str, Any]:
    """{"items": [...], "next": cursor or None}; `keys` must order rows uniquely. Rows are
    rendered one by one (`render`) or as a page (`render_all`, for values() rows whose
    related rows it fetches at once)."""
    limit = clean_limit(limit)
    queryset = queryset.order_by(*keys)
    after = cursor_after(queryset.model, keys, cursor)
    if after is not None:
        queryset = queryset.filter(after_condition(keys, after))
    rows, next_cursor = page_of(list(queryset[: limit + 1]), keys, limit)
    items = render_all(rows) if render_all is not None else [render(row) for row in rows]
    return {"items": items, "next": next_cursor}


def cursor_after(model: type[Model], keys: Sequence[str], cursor: str | None) -> list | None:
    """The sort key values a cursor of `model`'s rows in the order `keys` holds (None
    without one); Invalid for one this API did not give out."""
    if not cursor:
        return None
    after = _decode(cursor, len(keys))
    _check_kinds(model, keys, after)
    return after


def page_of(rows: list[Any], keys: Sequence[str], limit: int) -> tuple[list[Any], str | None]:
    """The page of rows read `limit` + 1 at a time in the order `keys`, and the cursor to
    the next page (None on the last)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, _encode([_value(rows[-1], k) for k in keys]) if more else None
