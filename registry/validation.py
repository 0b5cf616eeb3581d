"""Shape checks for the free-form parts of a version (SPEC 2). Every refusal names the field."""

import math
from typing import Any

from registry.errors import Invalid

MAX_KEY = 250
MAX_TEXT = 100_000


def storable(field: str, text: str) -> str:
    """Refuse what no database stores as text: NUL, and lone surrogates (not UTF-8)."""
    if "\x00" in text:
        raise Invalid(f"{field} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{field} must be valid Unicode text (it holds a lone surrogate)") from None
    return text


def _check_key(field: str, key: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise Invalid(f"{field}: keys must be non-empty strings of at most {MAX_KEY} characters")
    storable(f"{field} key", key)


def _check_text(field: str, value: Any, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a string")
    if len(value) > limit:
        raise Invalid(f"{field} is longer than {limit} characters")
    storable(field, value)


def _check_json(field: str, value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise Invalid(f"{field} is nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"{field} holds {value}: numbers must be finite")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise Invalid(f"{field}: keys must be strings")
            storable(f"{field} key", key)
            _check_json(field, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(field, item, depth + 1)
    elif isinstance(value, str):
        storable(field, value)
    elif value is not None and not isinstance(value, (int, float, bool)):
        raise Invalid(f"{field} holds a {type(value).__name__}, which is not JSON")


def tags(value: Any, field: str = "tags") -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f"{field} must be an object of string keys to string values")
    for key, item in value.items():
        _check_key(field, key)
        if not isinstance(item, str) or len(item) > 5000:
            raise Invalid(f"{field}.{key} must be a string of at most 5000 characters")
        storable(f"{field}.{key}", item)
    return dict(value)


def params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("params must be an object of names to values")
    for key, item in value.items():
        _check_key("params", key)
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise Invalid(f"params.{key} must be a string, number, boolean or null")
        _check_json(f"params.{key}", item)
    return dict(value)


def metrics(value: Any) -> dict[str, float | int]:
    if not isinstance(value, dict):
        raise Invalid("metrics must be an object of names to numbers")
    for key, item in value.items():
        _check_key("metrics", key)
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise Invalid(f"metrics.{key} must be a number")
        if not math.isfinite(item):
            raise Invalid(f"metrics.{key} is {item}: metrics must be finite numbers")
    return dict(value)


def environment(value: Any) -> dict[str, Any]:
    allowed = {"python_version", "requirements", "variables"}
    if not isinstance(value, dict):
        raise Invalid("environment must be an object with python_version, requirements, variables")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise Invalid(f"environment has unknown keys {unknown}; allowed: {sorted(allowed)}")
    if "python_version" in value:
        _check_text("environment.python_version", value["python_version"], 32)
    if "requirements" in value:
        _check_text("environment.requirements", value["requirements"])
    if "variables" in value:
        tags(value["variables"], "environment.variables")
    return dict(value)


def datasets(value: Any) -> list[dict[str, str]]:
    allowed = {"name", "uri", "version", "digest"}
    if not isinstance(value, list):
        raise Invalid("datasets must be a list of {name, uri, version, digest}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise Invalid(f"datasets[{index}] must be an object")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise Invalid(
                f"datasets[{index}] has unknown keys {unknown}; allowed: {sorted(allowed)}"
            )
        if not item.get("name"):
            raise Invalid(f"datasets[{index}] needs a name")
        for key, text in item.items():
            _check_text(f"datasets[{index}].{key}", text, 2048)
    return [dict(item) for item in value]


def code_version(value: Any) -> dict[str, str]:
    allowed = {"repo", "commit", "path"}
    if not isinstance(value, dict):
        raise Invalid("code_version must be an object with repo, commit, path")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise Invalid(f"code_version has unknown keys {unknown}; allowed: {sorted(allowed)}")
    for key, text in value.items():
        _check_text(f"code_version.{key}", text, 2048)
    return dict(value)


def schema(value: Any, field: str) -> Any:
    if value is not None and not isinstance(value, (dict, list)):
        raise Invalid(f"{field} must be a JSON object, a list or null")
    _check_json(field, value)
    return value


def short_text(value: Any, field: str, limit: int) -> str:
    _check_text(field, value, limit)
    return value


INGREDIENT_VALIDATORS = {
    "framework": lambda v: short_text(v, "framework", 64),
    "flavor": lambda v: short_text(v, "flavor", 64),
    "environment": environment,
    "datasets": datasets,
    "code_version": code_version,
    "params": params,
    "metrics": metrics,
    "input_schema": lambda v: schema(v, "input_schema"),
    "output_schema": lambda v: schema(v, "output_schema"),
    "experiment_id": lambda v: short_text(v, "experiment_id", 256),
    "source_run": lambda v: short_text(v, "source_run", 1024),
}

MAX_PATH_BYTES = 512


def artifact_path(path: Any) -> str:
    """A relative POSIX path (SPEC 3.5); anything else is refused with the rule it breaks."""
    if not isinstance(path, str) or path == "":
        raise Invalid("artifact path must be a non-empty string")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise Invalid(f"artifact path is longer than {MAX_PATH_BYTES} bytes")
    if "\x00" in path:
        raise Invalid("artifact path must not contain NUL")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in path):
        raise Invalid("artifact path must not contain control characters")
    if "\\" in path:
        raise Invalid("artifact path must use '/' and contain no backslashes")
    if path.startswith("/"):
        raise Invalid("artifact path must be relative, not absolute")
    segments = path.split("/")
    if ".." in segments:
        raise Invalid("artifact path must not contain '..' segments")
    if any(segment in ("", ".") for segment in segments):
        raise Invalid("artifact path must not contain empty or '.' segments")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("artifact path must be valid UTF-8") from None
    return path
