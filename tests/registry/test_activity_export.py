"""Activity exports (SPEC 3.7, 4.4): `export_activity` writes a header with the chain head, one
self-verifying line per event and a trailer; `verify_activity --file` checks the file with no
database and names the first broken line."""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from registry.audit import GENESIS, canonical_json, link_hash
from registry.export import (
    CSV_HEADER_MARK,
    FORMAT,
    LINE_FIELDS,
    csv_cell,
    csv_uncell,
    export_header,
    render,
)
from registry.models import ActivityChain, ActivityEvent
from registry.services.artifacts import artifact_put
from registry.services.comments import comment_add
from registry.services.orgs import membership_set
from registry.services.registered_models import model_create
from registry.services.versions import version_create

INJECTION = '=HYPERLINK("evil.example","click")'


def export(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("export_activity", *args, "--output", str(path), stdout=out)
    return out.getvalue()


def verify(path: Path) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_activity", "--file", str(path), stdout=out, stderr=err)
    assert err.getvalue() == ""
    return out.getvalue()


def verify_broken(path: Path) -> str:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="is broken at line"):
        call_command("verify_activity", "--file", str(path), stdout=out, stderr=err)
    assert out.getvalue() == ""
    return err.getvalue()


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


@pytest.fixture
def busy_acme(acme, model, alice, bob):
    for number in range(3):
        version_create(actor=alice, model=model, params={"lr": 0.1 * (number + 1)})
        comment_add(actor=bob, model=model, body=f"comment {number}\nsecond line")
    return acme


@pytest.fixture
def jsonl(busy_acme, tmp_path) -> Path:
    path = tmp_path / "acme.jsonl"
    export(path, "--org", "acme")
    return path


def synthetic_export(count: int = 5, **filters) -> tuple[dict, list[dict]]:
    """A valid export built with the pure functions only: no database involved."""
    events, prev = [], GENESIS
    for seq in range(1, count + 1):
        event = {
            "org_id": 7,
            "seq": seq,
            "created_at": f"2026-03-0{seq}T12:00:00.000000Z",
            "actor_id": 3,
            "actor_name": "-1" if seq == 2 else "alice",
            "verb": "comment.added",
            "target_type": "comment",
            "target_id": str(seq),
            "target_repr": {2: "two\nlines", 3: INJECTION}.get(seq, f"comment {seq}"),
            "model_id": 1,
            "version_id": None,
            "changes": {},
            "data": {"n": -seq},
        }
        event["prev_hash"], event["hash"] = prev, link_hash(prev, event)
        prev = event["hash"]
        events.append(event)
    header = export_header(
        org_slug="acme",
        org_id=7,
        head_seq=count,
        head_hash=prev,
        exported_at=datetime(2026, 3, 9, tzinfo=UTC),
        **filters,
    )
    return header, events


# The file ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_writes_the_header_every_event_and_a_trailer(jsonl, busy_acme):
    records = [json.loads(line) for line in lines_of(jsonl)]
    header, events, trailer = records[0], records[1:-1], records[-1]
    chain = ActivityChain.objects.get(org=busy_acme)
    assert header["format"] == FORMAT
    assert header["org"] == "acme" and header["org_id"] == busy_acme.pk
    assert header["head"] == {"seq": chain.seq, "hash": chain.head}
    assert header["filters"]["scope"] == "org" and header["filters"]["model"] is None
    assert [e["seq"] for e in events] == list(range(1, chain.seq + 1))
    assert all(set(e) == set(LINE_FIELDS) for e in events)
    stored = ActivityEvent.objects.get(org=busy_acme, seq=5)
    assert events[4]["hash"] == stored.hash and events[4]["target_repr"] == stored.target_repr
    assert all(link_hash(e["prev_hash"], e) == e["hash"] for e in events)
    assert trailer == {"end": FORMAT, "events": chain.seq}


@pytest.mark.django_db
def test_it_prints_a_summary_with_the_chain_head(busy_acme, tmp_path):
    output = export(tmp_path / "acme.csv", "--org", "acme")
    chain = ActivityChain.objects.get(org=busy_acme)
    assert output.strip() == (
        f"acme: {chain.seq} events written to {tmp_path / 'acme.csv'} (csv); "
        f"chain head #{chain.seq} {chain.head}"
    )
    assert (tmp_path / "acme.csv").read_text().startswith(f"{CSV_HEADER_MARK},")


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_it_verifies_an_export_with_the_database_blocked(
    busy_acme, tmp_path, fmt, django_db_blocker
):
    path = tmp_path / f"acme.{fmt}"
    export(path, "--org", "acme", "--format", fmt)
    chain = ActivityChain.objects.get(org=busy_acme)

    with django_db_blocker.block():
        output = verify(path)

    assert f"{chain.seq} events of acme verified ({fmt})" in output
    assert "complete: linked from event #1 to the chain head" in output
    assert f"chain head #{chain.seq} {chain.head}" in output


def test_it_verifies_a_file_without_any_database(tmp_path):
    # No django_db mark: pytest-django refuses any query in this test.
    header, events = synthetic_export()
    path = tmp_path / "synthetic.csv"
    path.write_text("".join(render(header, events, "csv")), newline="")

    assert "5 events of acme verified (csv); complete" in verify(path)


def test_it_verifies_cells_larger_than_csvs_default_limit(tmp_path):
    header, events = synthetic_export(count=2)
    events[1]["data"] = {"readme": "x" * 300_000}
    events[1]["hash"] = link_hash(events[1]["prev_hash"], events[1])
    header["head"]["hash"] = events[1]["hash"]
    path = tmp_path / "large.csv"
    path.write_text("".join(render(header, events, "csv")), newline="")

    assert "2 events of acme verified (csv); complete" in verify(path)


def test_it_names_an_edited_line_without_any_database(tmp_path):
    header, events = synthetic_export()
    path = tmp_path / "synthetic.jsonl"
    lines = list(render(header, events, "jsonl"))
    lines[3] = lines[3].replace('"verb":"comment.added"', '"verb":"comment.deleted"')
    write_lines(path, lines)

    assert "broken at line 4: event #3: its content does not match its hash" in verify_broken(path)


def test_it_names_the_physical_line_of_a_csv_record(tmp_path):
    # Event #2 holds a line break, so its record spans lines 4 and 5 and #4 is on line 7.
    header, events = synthetic_export()
    path = tmp_path / "synthetic.csv"
    lines = list(render(header, events, "csv"))
    assert lines[3].count("\n") == 2
    lines[5] = lines[5].replace("comment 4", "comment four")
    path.write_text("".join(lines), newline="")

    assert "broken at line 7: event #4: its content does not match its hash" in verify_broken(path)


# Formula injection ---------------------------------------------------------------------------


def test_it_escapes_formula_cells_so_that_the_escape_undoes_exactly():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "＝1", "'quoted", "''=x"):
        assert csv_cell(text).startswith("'")
        assert csv_uncell(csv_cell(text)) == text
    for text in ("plain", "1", "{}", "", "a=b"):
        assert csv_cell(text) == text
        assert csv_uncell(text) == text


@pytest.mark.django_db
def test_it_neutralises_formulas_in_csv_and_still_verifies(acme, model, admin, alice, tmp_path):
    minus = get_user_model().objects.create_user("-1", password="x")
    membership_set(actor=admin, org=acme, user=minus)
    comment_add(actor=minus, model=model, body="=cmd|' /C calc'!A0")
    version = version_create(actor=alice, model=model)
    artifact_put(actor=alice, version=version, path=INJECTION, source=io.BytesIO(b"x"))
    path = tmp_path / "acme.csv"
    export(path, "--org", "acme")

    text = path.read_text()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    cells = [cell for row in rows[2:-1] for cell in row]
    assert "'" + INJECTION in cells
    assert "'-1" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "complete" in verify(path)


# Tampering -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_names_an_edited_line(jsonl):
    lines = lines_of(jsonl)
    event = json.loads(lines[6])
    event["target_repr"] = "something else"
    lines[6] = canonical_json(event) + "\n"
    write_lines(jsonl, lines)

    output = verify_broken(jsonl)

    assert f"broken at line 7: event #{event['seq']}: its content does not match its hash" in output


@pytest.mark.django_db
def test_it_names_an_edited_csv_line(busy_acme, tmp_path):
    path = tmp_path / "acme.csv"
    export(path, "--org", "acme")
    lines = lines_of(path)
    index = next(i for i, line in enumerate(lines) if ",comment.added," in line)
    seq = lines[index].split(",")[1]
    lines[index] = lines[index].replace(",comment.added,", ",comment.removed,")
    write_lines(path, lines)

    output = verify_broken(path)

    assert f"broken at line {index + 1}: event #{seq}: its content does not match its hash" in (
        output
    )


@pytest.mark.django_db
def test_it_names_the_line_after_an_edited_and_rehashed_one(jsonl):
    lines = lines_of(jsonl)
    event = json.loads(lines[4])
    event["verb"] = "lock.lowered"
    event["hash"] = link_hash(event["prev_hash"], event)
    lines[4] = canonical_json(event) + "\n"
    write_lines(jsonl, lines)

    output = verify_broken(jsonl)

    assert (
        "broken at line 6: event #5: prev_hash does not match the hash of event #4 on line 5"
        in (output)
    )


@pytest.mark.django_db
def test_it_names_a_deleted_line(jsonl):
    lines = lines_of(jsonl)
    del lines[4]
    write_lines(jsonl, lines)

    output = verify_broken(jsonl)

    assert "broken at line 5: expected event #4 next, found #5: events are missing" in output


@pytest.mark.django_db
def test_it_names_a_deleted_last_event_and_a_missing_trailer(jsonl):
    lines = lines_of(jsonl)
    count = len(lines) - 2
    write_lines(jsonl, lines[:-2] + lines[-1:])
    assert (
        f"broken at line {count + 1}: the trailer counts {count} events but the file holds "
        f"{count - 1}"
    ) in verify_broken(jsonl)

    write_lines(jsonl, lines[:-1])
    assert f"broken at line {count + 2}: the trailer is missing" in verify_broken(jsonl)


@pytest.mark.django_db
def test_it_names_swapped_lines(jsonl):
    lines = lines_of(jsonl)
    lines[3], lines[4] = lines[4], lines[3]
    write_lines(jsonl, lines)

    output = verify_broken(jsonl)

    assert "broken at line 4: expected event #3 next, found #4" in output


@pytest.mark.django_db
def test_it_names_an_edited_header(jsonl, busy_acme):
    lines = lines_of(jsonl)
    header = json.loads(lines[0])
    seq = header["head"]["seq"]

    header["head"]["hash"] = "f" * 64
    write_lines(jsonl, [canonical_json(header) + "\n", *lines[1:]])
    assert f"broken at line 1: the header's chain head #{seq} does not match event #{seq}" in (
        verify_broken(jsonl)
    )

    header["head"] = {"seq": seq + 1, "hash": json.loads(lines[-2])["hash"]}
    write_lines(jsonl, [canonical_json(header) + "\n", *lines[1:]])
    assert (
        f"broken at line 1: the header's chain head is event #{seq + 1} but the export ends at "
        f"event #{seq}"
    ) in verify_broken(jsonl)

    header = json.loads(lines[0])
    header["org_id"] = busy_acme.pk + 1
    write_lines(jsonl, [canonical_json(header) + "\n", *lines[1:]])
    assert "broken at line 2: event #1 belongs to org" in verify_broken(jsonl)

    header = json.loads(lines[0])
    header["format"] = "something/2"
    write_lines(jsonl, [canonical_json(header) + "\n", *lines[1:]])
    assert "broken at line 1: unknown export format 'something/2'" in verify_broken(jsonl)


@pytest.mark.django_db
def test_it_refuses_lines_with_extra_or_missing_fields(jsonl):
    lines = lines_of(jsonl)
    event = json.loads(lines[2])
    event["note"] = "not covered by the hash"
    write_lines(jsonl, [*lines[:2], canonical_json(event) + "\n", *lines[3:]])

    assert "broken at line 3: the event's fields are wrong: unexpected note" in verify_broken(jsonl)


def test_it_refuses_what_is_not_an_export(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    assert "broken at line 1: not a Modelvault activity export" in verify_broken(path)
    path.write_text("")
    assert "broken at line 1: not a Modelvault activity export" in verify_broken(path)
    with pytest.raises(CommandError, match="cannot read"):
        verify(tmp_path / "missing.jsonl")
    with pytest.raises(CommandError, match="leave out --org"):
        call_command("verify_activity", "--file", str(path), "--org", "acme")


# Filtered exports ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exports_one_model_and_reports_the_filter_gaps(busy_acme, model, alice, tmp_path):
    other = model_create(actor=alice, org=busy_acme, name="other")
    version_create(actor=alice, model=other)
    comment_add(actor=alice, model=model, body="after the other model")
    path = tmp_path / "fraud.jsonl"
    export(path, "--org", "acme", "--model", "fraud")

    records = [json.loads(line) for line in lines_of(path)]
    assert records[0]["filters"]["model"] == "fraud"
    assert {e["model_id"] for e in records[1:-1]} == {model.pk}
    assert len(records) - 2 == ActivityEvent.objects.filter(model_id=model.pk).count()
    output = verify(path)
    assert "filtered (model fraud)" in output and "1 gap(s)" in output

    # A filtered file cannot pass for another model's events.
    records[0]["filters"]["model_id"] = other.pk
    path.write_text("".join(canonical_json(r) + "\n" for r in records))
    assert "broken at line 2: event #" in verify_broken(path)
    assert "is outside the header's filters (line 1)" in verify_broken(path)


@pytest.mark.django_db
def test_it_exports_a_time_range(busy_acme, model, tmp_path):
    events = list(ActivityEvent.objects.filter(org=busy_acme).order_by("seq"))
    middle = events[len(events) // 2]
    until = middle.created_at + timedelta(microseconds=1)
    path = tmp_path / "range.csv"
    export(
        path,
        "--org",
        "acme",
        "--since",
        middle.created_at.isoformat(),
        "--until",
        until.isoformat(),
    )

    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    seqs = [int(row[1]) for row in rows[2:-1]]
    assert middle.seq in seqs
    assert all(middle.created_at <= e.created_at < until for e in events if e.seq in seqs)
    assert "filtered (since " in verify(path)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nosuch"], "organization nosuch not found"),
        (["--org", "acme", "--model", "nosuch"], "model nosuch not found in acme"),
        (["--org", "acme", "--since", "yesterday"], "--since must be an ISO 8601 time"),
        (["--org", "acme", "--until", "2026-03-01T00:00:00"], "give --until with its time zone"),
        (
            ["--org", "acme", "--since", "2026-03-02T00:00Z", "--until", "2026-03-01T00:00Z"],
            "--since must be before --until",
        ),
    ],
)
def test_it_refuses_bad_export_options(busy_acme, tmp_path, args, message):
    path = tmp_path / "out.jsonl"
    with pytest.raises(CommandError, match=message):
        export(path, *args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_it_refuses_an_output_folder_that_does_not_exist(busy_acme, tmp_path):
    with pytest.raises(CommandError, match="no folder"):
        export(tmp_path / "nope" / "out.jsonl", "--org", "acme")


# Offline, as a separate process --------------------------------------------------------------


def run_offline(path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "SECRET_KEY": "test-only-not-a-secret",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "verify_activity", "--file", str(path)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_it_verifies_offline_in_a_process_whose_database_is_unreachable(jsonl):
    intact = run_offline(jsonl)
    assert intact.returncode == 0, intact.stderr
    assert "events of acme verified (jsonl); complete" in intact.stdout

    lines = lines_of(jsonl)
    lines[3] = lines[3].replace('"verb":"', '"verb":"x', 1)
    write_lines(jsonl, lines)
    broken = run_offline(jsonl)
    assert broken.returncode == 1
    assert "broken at line 4: event #3: its content does not match its hash" in broken.stderr
