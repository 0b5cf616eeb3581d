"""Activity exports (SPEC 3.7): a header, one self-verifying line per event and a trailer, as
JSON Lines or CSV; and their offline verification.

Everything but `export_for` is pure (the chain functions of registry.audit and the standard
library), so that `verify_activity --file` checks an export with no database at all.

Layout (docs/operations.md has the reader's view):

- JSON Lines: line 1 the header object, then one object per event, then the trailer object.
- CSV: line 1 `# modelvault activity export` and the header as JSON, line 2 the column
  names, then one row per event, then `# end` and the trailer as JSON.

An event line holds every field the chain hash covers (`audit.CHAINED_FIELDS`, in their
canonical form) plus `prev_hash` and `hash`, so each line verifies on its own
(`hash == link_hash(prev_hash, event)`) and consecutive seqs link (`prev_hash` is the hash of
the line before). CSV cells that a spreadsheet would run as a formula are prefixed with `'`;
the verifier undoes exactly that prefix before hashing.
"""

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from registry.audit import CHAINED_FIELDS, GENESIS, canonical_event, canonical_json, link_hash

FORMAT = "modelvault-activity-export/1"
Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
LINE_FIELDS = (*CHAINED_FIELDS, "prev_hash", "hash")
CSV_HEADER_MARK = "# modelvault activity export"
CSV_END_MARK = "# end"
CSV_FIELD_LIMIT = 256 * 1024 * 1024
# Rows fetched per round trip while streaming: memory stays flat whatever the export's size.
CHUNK_SIZE = 2000

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); the full-width forms are read as the same by some. A leading quote is escaped
# too, so that undoing the escape is exact: a cell starting with ' always had one added.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠", "'")

_INT_FIELDS = ("org_id", "seq", "actor_id", "model_id")
_NULLABLE = ("actor_id", "model_id", "version_id")
_TEXT_FIELDS = ("actor_name", "verb", "target_type", "target_id", "target_repr")
_JSON_FIELDS = ("changes", "data")
_HEADER = ("format", "org", "org_id", "exported_at", "exported_by", "filters", "head")
_FILTERS = ("model", "model_id", "version", "version_id", "since", "until", "scope")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_CSV_INT = re.compile(r"0|[1-9][0-9]{0,18}")


def timestamp(value: datetime) -> str:
    """The chain's canonical UTC time; fixed width, so these strings sort as times do."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 time with its zone (`Z` or an offset); ValueError names what is wrong."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time, e.g. 2026-03-01T12:00:00Z") from None
    if when.tzinfo is None:
        raise ValueError(f"give {name} with its time zone, e.g. 2026-03-01T12:00:00Z")
    return when


# Writing ---------------------------------------------------------------------------------


def export_header(
    *,
    org_slug: str,
    org_id: int,
    head_seq: int,
    head_hash: str,
    exported_at: datetime,
    exported_by: str | None = None,
    model: str | None = None,
    model_id: int | None = None,
    version: int | None = None,
    version_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    scope: Literal["org", "viewable"] = "org",
) -> dict[str, Any]:
    """The first record. `scope` is `org` when no event was left out for the reader's
    permissions; `viewable` when only events of models the reader may view are in."""
    return {
        "format": FORMAT,
        "org": org_slug,
        "org_id": org_id,
        "exported_at": timestamp(exported_at),
        "exported_by": exported_by,
        "filters": {
            "model": model,
            "model_id": model_id,
            "version": version,
            "version_id": version_id,
            "since": timestamp(since) if since else None,
            "until": timestamp(until) if until else None,
            "scope": scope,
        },
        "head": {"seq": head_seq, "hash": head_hash},
    }


def export_line(event: Mapping[str, Any]) -> dict[str, Any]:
    """One event as exported: its canonical chained fields (exactly what the hash covers,
    so they cannot drift from it) plus prev_hash and hash."""
    line = json.loads(canonical_event(event))
    line["prev_hash"] = event["prev_hash"]
    line["hash"] = event["hash"]
    return line


def csv_cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_uncell(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def _csv_row(line: Mapping[str, Any]) -> list[str]:
    cells = []
    for name in LINE_FIELDS:
        value = line[name]
        if name in _JSON_FIELDS:
            value = canonical_json(value)
        cells.append("" if value is None else csv_cell(str(value)))
    return cells


class _Echo:
    """csv.writer's file: hands each written row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def render(
    header: Mapping[str, Any], events: Iterable[Mapping[str, Any]], fmt: Format
) -> Iterator[str]:
    """The export as text chunks, one record each: header, events, trailer (streams)."""
    count = 0
    if fmt == "jsonl":
        yield canonical_json(header) + "\n"
        for event in events:
            yield canonical_json(export_line(event)) + "\n"
            count += 1
        yield canonical_json({"end": FORMAT, "events": count}) + "\n"
        return
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow([CSV_HEADER_MARK, canonical_json(header)])
    yield writer.writerow(LINE_FIELDS)
    for event in events:
        yield writer.writerow(_csv_row(export_line(event)))
        count += 1
    yield writer.writerow([CSV_END_MARK, canonical_json({"end": FORMAT, "events": count})])


@dataclass(frozen=True)
class Export:
    header: dict[str, Any]
    events: Any  # a QuerySet of dicts, in seq order, streamed in chunks

    def render(self, fmt: Format) -> Iterator[str]:
        return render(self.header, self.events.iterator(chunk_size=CHUNK_SIZE), fmt)

    def filename(self, fmt: Format) -> str:
        filters = self.header["filters"]
        parts = [
            self.header["org"],
            filters["model"],
            filters["version"] and f"v{filters['version']}",
        ]
        return "-".join(str(p) for p in parts if p) + f"-activity.{fmt}"


def export_for(
    org,
    *,
    user=None,
    model=None,
    version=None,
    since: datetime | None = None,
    until: datetime | None = None,
    exported_by: str | None = None,
) -> Export:
    """The events of `org` to export, with their header. `user` None is the operator (the
    management command): every event. A user gets what the activity list shows them: the
    events of models they may view, and org-wide events only as an org admin. The caller has
    fetched `model`/`version` with authorisation (404 before anything is read).

    The chain head is read first and events are cut at its seq: the head is committed with
    its event, so every event up to it is there, and later appends do not shift the file.
    The header names the org's head only to an org admin or the operator; anyone else gets
    the last event of their file as its head (or #0), since the org's would count events of
    models they may not view.
    """
    # Imported here so that verifying a file (the rest of this module) needs no database.
    from django.utils import timezone

    from registry.models import ActivityChain, ActivityEvent, RegisteredModel
    from registry.permissions import is_org_admin

    head = ActivityChain.objects.filter(org=org).values("seq", "head").first()
    head_seq, head_hash = (head["seq"], head["head"]) if head else (0, GENESIS)
    events = ActivityEvent.objects.filter(org=org, seq__lte=head_seq)
    scope: Literal["org", "viewable"] = "org"
    if version is not None:
        events = events.filter(version_id=version.pk)
    elif model is not None:
        events = events.filter(model_id=model.pk)
    sees_all = user is None or is_org_admin(user, org)
    if version is None and model is None and not sees_all:
        visible = RegisteredModel.objects.visible_to(user).filter(org=org).values("pk")
        events = events.filter(model_id__in=visible)
        scope = "viewable"
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    if not sees_all:
        last = events.order_by("-seq").values("seq", "hash").first()
        head_seq, head_hash = (last["seq"], last["hash"]) if last else (0, GENESIS)
    if model is None and version is not None:
        model = version.model
    header = export_header(
        org_slug=org.slug,
        org_id=org.pk,
        head_seq=head_seq,
        head_hash=head_hash,
        exported_at=timezone.now(),
        exported_by=exported_by,
        model=model.name if model is not None else None,
        model_id=model.pk if model is not None else None,
        version=version.number if version is not None else None,
        version_id=str(version.pk) if version is not None else None,
        since=since,
        until=until,
        scope=scope,
    )
    return Export(header, events.order_by("seq").values(*LINE_FIELDS))


# Verifying -------------------------------------------------------------------------------


class BrokenLine(Exception):
    """What is wrong, and on which line of the file (1-based)."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass
class Verified:
    """The result of verifying an export: what it covers and how its events link."""

    format: Format
    header: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    gaps: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problem: BrokenLine | None = None

    @property
    def complete(self) -> bool:
        return is_complete(self.header.get("filters", {}))

    @property
    def ok(self) -> bool:
        return self.problem is None


def is_complete(filters: Mapping[str, Any]) -> bool:
    """No filter and nothing left out for permissions: the file must hold the whole chain."""
    return filters.get("scope") == "org" and all(
        filters.get(name) is None for name in _FILTERS if name != "scope"
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def _check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or "format" not in header:
        raise BrokenLine(1, "the header is missing: this is not a Modelvault activity export")
    if header["format"] != FORMAT:
        raise BrokenLine(1, f"unknown export format {header['format']!r}; expected {FORMAT}")
    filters, head = header.get("filters"), header.get("head")
    problems = []
    unexpected = sorted(set(header) - set(_HEADER))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected))
    if not isinstance(header.get("org"), str):
        problems.append("org")
    if not _is_int(header.get("org_id")):
        problems.append("org_id")
    exported_at = header.get("exported_at")
    if not (isinstance(exported_at, str) and _TIMESTAMP.fullmatch(exported_at)):
        problems.append("exported_at")
    if not isinstance(header.get("exported_by", ""), str | None):
        problems.append("exported_by")
    if not isinstance(head, dict) or not _is_int(head.get("seq")) or head["seq"] < 0:
        problems.append("head.seq")
    elif not isinstance(head.get("hash"), str) or not _HEX64.fullmatch(head["hash"]):
        problems.append("head.hash")
    if not isinstance(filters, dict) or set(filters) != set(_FILTERS):
        problems.append("filters")
    else:
        if filters["scope"] not in ("org", "viewable"):
            problems.append("filters.scope")
        if filters["model_id"] is not None and not _is_int(filters["model_id"]):
            problems.append("filters.model_id")
        if filters["version_id"] is not None and not isinstance(filters["version_id"], str):
            problems.append("filters.version_id")
        for name in ("since", "until"):
            value = filters[name]
            if value is not None and not (isinstance(value, str) and _TIMESTAMP.fullmatch(value)):
                problems.append(f"filters.{name}")
    if problems:
        raise BrokenLine(1, "the header is malformed: " + ", ".join(problems))
    if head["seq"] == 0 and head["hash"] != GENESIS:
        raise BrokenLine(1, "the header's chain head #0 must be the genesis hash")
    return header


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_event(event: Any, line: int) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise BrokenLine(line, "not an event record")
    if set(event) != set(LINE_FIELDS):
        missing = sorted(set(LINE_FIELDS) - set(event))
        extra = sorted(set(event) - set(LINE_FIELDS))
        detail = "; ".join(
            part
            for part in (
                missing and "missing " + ", ".join(missing),
                extra and "unexpected " + ", ".join(extra),
            )
            if part
        )
        raise BrokenLine(line, f"the event's fields are wrong: {detail}")
    wrong = []
    for name in _INT_FIELDS:
        if not (_is_int(event[name]) or (name in _NULLABLE and event[name] is None)):
            wrong.append(name)
    for name in _TEXT_FIELDS:
        if not isinstance(event[name], str):
            wrong.append(name)
    if not (event["version_id"] is None or isinstance(event["version_id"], str)):
        wrong.append("version_id")
    if not (isinstance(event["created_at"], str) and _TIMESTAMP.fullmatch(event["created_at"])):
        wrong.append("created_at")
    for name in ("prev_hash", "hash"):
        if not (isinstance(event[name], str) and _HEX64.fullmatch(event[name])):
            wrong.append(name)
    if wrong:
        raise BrokenLine(line, "malformed field(s): " + ", ".join(wrong))
    return event


def _from_csv(row: list[str], line: int) -> dict[str, Any]:
    if len(row) != len(LINE_FIELDS):
        raise BrokenLine(line, f"expected {len(LINE_FIELDS)} cells, found {len(row)}")
    event: dict[str, Any] = {}
    for name, cell in zip(LINE_FIELDS, row, strict=True):
        text = csv_uncell(cell)
        if name in _NULLABLE and text == "":
            event[name] = None
        elif name in _INT_FIELDS:
            if not _CSV_INT.fullmatch(text):
                raise BrokenLine(line, f"malformed field(s): {name}")
            event[name] = int(text)
        elif name in _JSON_FIELDS:
            try:
                event[name] = _json(text)
            except ValueError:
                raise BrokenLine(line, f"malformed field(s): {name} is not JSON") from None
        else:
            event[name] = text
    return event


def _records(lines: Iterable[str], fmt: Format) -> Iterator[tuple[int, Any]]:
    """(line number, parsed record) for each record of the file; BrokenLine if unreadable."""
    if fmt == "jsonl":
        for number, text in enumerate(lines, start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                raise BrokenLine(number, "empty line")
            try:
                yield number, _json(text)
            except ValueError:
                raise BrokenLine(number, "not JSON") from None
        return
    # A readme's old and new text can sit in one cell: far past csv's default 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(lines, strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise BrokenLine(start, f"not CSV ({exc})") from None


def _parsed(records: Iterator[tuple[int, Any]], fmt: Format) -> Iterator[tuple[int, Any]]:
    """Header, events and trailer as dicts (CSV rows decoded, the formula escape undone);
    the trailer is yielded as ("end", dict)."""
    number, first = next(records, (1, None))
    if fmt == "csv":
        if not (isinstance(first, list) and len(first) == 2 and first[0] == CSV_HEADER_MARK):
            raise BrokenLine(1, f"the header is missing: expected {CSV_HEADER_MARK!r} first")
        try:
            first = _json(first[1])
        except ValueError:
            raise BrokenLine(1, "the header is not JSON") from None
        names_at, names = next(records, (2, None))
        if names != list(LINE_FIELDS):
            raise BrokenLine(names_at, "the column names are not those of this format")
    yield number, first
    for number, record in records:
        if fmt == "csv":
            if record and record[0] == CSV_END_MARK:
                try:
                    record = _json(record[1]) if len(record) == 2 else None
                except ValueError:
                    record = None
                if not (isinstance(record, dict) and "end" in record):
                    raise BrokenLine(number, "the trailer is malformed")
            else:
                record = _from_csv(record, number)
        yield number, record


def detect_format(first_line: str) -> Format | None:
    text = first_line.lstrip("\ufeff")
    if text.startswith("{"):
        return "jsonl"
    if text.startswith((CSV_HEADER_MARK, f'"{CSV_HEADER_MARK}')):
        return "csv"
    return None


def verify_export(lines: Iterable[str], fmt: Format | None = None) -> Verified:
    """Verify an export read as lines (a text file opened with newline=""), offline.

    Every event must hash to its own `hash`; consecutive seqs must link; seqs must rise;
    each event must belong to the header's org and match its filters; an event at the
    header's chain head must carry the head's hash; the trailer must count the events.
    A complete export (no filter) must also run from event #1 to the chain head without a
    gap. The first problem found is returned with its line number.
    """
    lines = iter(lines)
    first = next(lines, "")
    fmt = fmt or detect_format(first)
    result = Verified(format=fmt or "jsonl")
    try:
        if fmt is None:
            raise BrokenLine(1, "not a Modelvault activity export (no JSON or CSV header)")
        _walk(_parsed(_records(_chain_first(first, lines), fmt), fmt), result)
    except BrokenLine as problem:
        result.problem = problem
    return result


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first.lstrip("\ufeff")
    yield from rest


def _walk(records: Iterator[tuple[int, Any]], result: Verified) -> None:
    _, header = next(records)
    header = _check_header(header)
    result.header = header
    org_id, filters = header["org_id"], header["filters"]
    head_seq, head_hash = header["head"]["seq"], header["head"]["hash"]
    complete = is_complete(filters)
    prev: dict[str, Any] | None = None
    prev_line = 0
    trailer: tuple[int, dict] | None = None
    for number, record in records:
        if trailer is not None:
            raise BrokenLine(number, f"a record after the trailer on line {trailer[0]}")
        if isinstance(record, dict) and "end" in record:
            trailer = (number, record)
            continue
        event = _check_event(record, number)
        seq = event["seq"]
        if event["org_id"] != org_id:
            raise BrokenLine(
                number, f"event #{seq} belongs to org {event['org_id']}, not the header's {org_id}"
            )
        if link_hash(event["prev_hash"], event) != event["hash"]:
            raise BrokenLine(number, f"event #{seq}: its content does not match its hash (edited)")
        if seq > head_seq:
            raise BrokenLine(
                number, f"event #{seq} is past the chain head #{head_seq} of the header (line 1)"
            )
        if seq == head_seq and event["hash"] != head_hash:
            raise BrokenLine(
                1,
                f"the header's chain head #{head_seq} does not match event #{seq} on line "
                f"{number}: the header or that line was altered",
            )
        if seq == 1 and event["prev_hash"] != GENESIS:
            raise BrokenLine(number, "event #1 does not follow the genesis hash")
        if prev is None:
            if complete and seq != 1:
                raise BrokenLine(
                    number, f"expected event #1 first, found #{seq}: events are missing"
                )
            result.first_seq = seq
        else:
            before = prev["seq"]
            if seq <= before:
                raise BrokenLine(
                    number,
                    f"event #{seq} follows event #{before} (line {prev_line}): lines are out of "
                    "order or repeated",
                )
            if seq == before + 1 and event["prev_hash"] != prev["hash"]:
                raise BrokenLine(
                    number,
                    f"event #{seq}: prev_hash does not match the hash of event #{before} on line "
                    f"{prev_line}: that line was altered and rehashed, or this one was",
                )
            if seq > before + 1:
                if complete:
                    raise BrokenLine(
                        number,
                        f"expected event #{before + 1} next, found #{seq}: events are missing "
                        "or out of order",
                    )
                result.gaps += 1
        _check_filters(event, filters, number)
        prev, prev_line = event, number
        result.events += 1
        result.last_seq = seq
    if trailer is None:
        raise BrokenLine(
            prev_line + 1, "the trailer is missing: the file was cut short or its end removed"
        )
    number, end = trailer
    if end.get("end") != FORMAT or not _is_int(end.get("events")):
        raise BrokenLine(number, "the trailer is malformed")
    if end["events"] != result.events:
        raise BrokenLine(
            number,
            f"the trailer counts {end['events']} events but the file holds {result.events}: "
            "lines were removed or added",
        )
    if complete and (result.last_seq or 0) != head_seq:
        last = result.last_seq or 0
        raise BrokenLine(
            1,
            f"the header's chain head is event #{head_seq} but the export ends at event #{last}"
            + (f" (line {prev_line})" if last else "")
            + ": "
            + ("events were removed from the end" if last < head_seq else "the head was altered"),
        )


def _check_filters(event: Mapping[str, Any], filters: Mapping[str, Any], number: int) -> None:
    seq = event["seq"]
    outside = []
    if filters["model_id"] is not None and event["model_id"] != filters["model_id"]:
        outside.append(f"model {event['model_id']} is not {filters['model_id']}")
    if filters["version_id"] is not None and event["version_id"] != filters["version_id"]:
        outside.append("another version")
    # Canonical timestamps are fixed-width UTC: comparing the strings compares the times.
    if filters["since"] is not None and event["created_at"] < filters["since"]:
        outside.append(f"{event['created_at']} is before since")
    if filters["until"] is not None and event["created_at"] >= filters["until"]:
        outside.append(f"{event['created_at']} is not before until")
    if outside:
        raise BrokenLine(
            number,
            f"event #{seq} is outside the header's filters (line 1): " + "; ".join(outside),
        )


def verify_file(path: str) -> Verified:
    """Verify the export at `path`; BOM-tolerant, any line ending (CSV keeps quoted ones)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return verify_export(handle)
