"""The parameters of an MLflow request: a GET's query string, or the JSON body of the other
methods, as MLflow's client sends them (rest_utils.call_endpoint). Repeated fields are
repeated keys in a query string and lists in a body."""

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, QueryDict

from registry.errors import Invalid, TooLarge

MAX_INT = 2**31 - 1


def _missing(name: str) -> Invalid:
    return Invalid(f"missing value for required parameter '{name}'")


class Params:
    def __init__(self, request: HttpRequest):
        self.query: QueryDict | None = None
        self.body: dict[str, Any] = {}
        if request.method == "GET":
            self.query = request.GET
            return
        try:
            raw = request.body
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            raise TooLarge(f"the request body is larger than {limit} bytes") from None
        if not raw.strip():
            return
        try:
            body = json.loads(raw)
        except ValueError:
            raise Invalid("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise Invalid("the request body must be a JSON object")
        self.body = body

    def _value(self, name: str) -> Any:
        if self.query is not None:
            return self.query.get(name)
        return self.body.get(name)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self._value(name)
        if value is None or (required and value == ""):
            if required:
                raise _missing(name)
            return None
        if not isinstance(value, str):
            raise Invalid(f"parameter '{name}' must be a string")
        return value

    def required(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def texts(self, name: str) -> list[str]:
        values = self.query.getlist(name) if self.query is not None else self.body.get(name, [])
        if values is None:
            return []
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Invalid(f"parameter '{name}' must be a list of strings")
        return values

    def integer(self, name: str) -> int | None:
        value = self._value(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise Invalid(f"parameter '{name}' must be a whole number")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise Invalid(f"parameter '{name}' must be a whole number, not {value!r}") from None
        if not -MAX_INT <= number <= MAX_INT:
            raise Invalid(f"parameter '{name}' is out of range")
        return number

    def version(self) -> int:
        """MLflow names a version by its number, as a string."""
        raw = self.required("version")
        if not raw.isascii() or not raw.isdigit():
            raise Invalid(f"parameter 'version' must be a version number, not {raw!r}")
        number = int(raw)
        if not 0 < number <= MAX_INT:
            raise Invalid(f"parameter 'version' must be a version number, not {raw!r}")
        return number

    def boolean(self, name: str) -> bool:
        value = self._value(name)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise Invalid(f"parameter '{name}' must be true or false")

    def tags(self, name: str = "tags") -> dict[str, str]:
        """MLflow's repeated {key, value} messages, as one dict."""
        values = self.body.get(name) if self.query is None else None
        if values is None:
            return {}
        if not isinstance(values, list):
            raise Invalid(f"parameter '{name}' must be a list of {{key, value}} objects")
        tags: dict[str, str] = {}
        for item in values:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise Invalid(f"parameter '{name}' must be a list of {{key, value}} objects")
            value = item.get("value", "")
            if not isinstance(value, str):
                raise Invalid(f"{name}.{item['key']} must be a string")
            tags[item["key"]] = value
        return tags
