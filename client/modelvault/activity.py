"""The activity log of an organization (SPEC 3.7) as the caller may view it: events to read,
and the verifiable export (`manage.py verify_activity --file`) to keep.

    for event in client.activity(model="fraud", since="2026-01-01T00:00:00Z"): ...
    client.export_activity("exports/", format="csv", model="fraud")  # -> Path
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelvault.errors import ModelvaultError

if TYPE_CHECKING:
    from modelvault.client import Client

FORMATS = ("jsonl", "csv")
FILENAME = re.compile(r'filename="([^"/\\]+)"')


def _filters(**given: Any) -> dict[str, Any]:
    return {key: value for key, value in given.items() if value is not None}


def events(
    client: "Client",
    *,
    model: str | None = None,
    version: int | None = None,
    since: str | None = None,
    until: str | None = None,
    after: str | int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every event matching the filters, in chain order (`seq`)."""
    params = _filters(model=model, version=version, since=since, until=until, after=after)
    return client.paginate(f"{client._org_path()}/activity", params)


def export(
    client: "Client",
    dest: str | os.PathLike = ".",
    *,
    format: str = "jsonl",
    model: str | None = None,
    version: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Path:
    """Stream the export to `dest` (a file, or a directory for the server's file name) through
    a `.part` file beside it, renamed once whole; the path written."""
    if format not in FORMATS:
        raise ModelvaultError(f"an export is {' or '.join(FORMATS)}, not {format!r}")
    params = _filters(format=format, model=model, version=version, since=since, until=until)
    with client.stream("GET", f"{client._org_path()}/activity", params=params) as response:
        target = Path(dest)
        if target.is_dir():
            named = FILENAME.search(response.headers.get("Content-Disposition", ""))
            target = target / (named.group(1) if named else f"{client.org}-activity.{format}")
        part = target.with_name(f".{target.name}.part")
        try:
            with part.open("wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, target)
    return target
