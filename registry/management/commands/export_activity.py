"""Export an organization's activity log, with its chain head, as JSON Lines or CSV (SPEC 3.7).

`verify_activity --file` checks the file later, offline, with no database.
"""

import os
import tempfile
from collections.abc import Iterable, Iterator

from django.core.management.base import BaseCommand, CommandError

from registry.export import CHUNK_SIZE, FORMATS, export_for, parse_time, render
from registry.models import Organization, RegisteredModel


class Command(BaseCommand):
    help = (
        "Write an organization's activity (or one model's, or a time range's) to a file as JSON "
        "Lines or CSV, with the chain head at export time; verify it with "
        "`verify_activity --file`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", required=True)
        parser.add_argument("--model", metavar="NAME", help="only this model's events")
        parser.add_argument("--since", metavar="ISO", help="events at or after this time")
        parser.add_argument("--until", metavar="ISO", help="events before this time")
        parser.add_argument("--format", choices=FORMATS, help="default: from --output, else jsonl")
        parser.add_argument("--output", metavar="FILE", required=True)

    def handle(self, *args, **options) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"organization {options['org']} not found")
        model = None
        if options["model"] is not None:
            model = RegisteredModel.objects.filter(org=org, name=options["model"]).first()
            if model is None:
                raise CommandError(f"model {options['model']} not found in {org.slug}")
        try:
            since = parse_time(options["since"], "--since") if options["since"] else None
            until = parse_time(options["until"], "--until") if options["until"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if since and until and since >= until:
            raise CommandError("--since must be before --until")
        output = options["output"]
        fmt = options["format"] or ("csv" if output.lower().endswith(".csv") else "jsonl")
        export = export_for(org, model=model, since=since, until=until)
        events = _Counted(export.events.iterator(chunk_size=CHUNK_SIZE))
        _write(output, render(export.header, events, fmt))
        head = export.header["head"]
        self.stdout.write(
            f"{org.slug}: {events.count} events written to {output} ({fmt}); "
            f"chain head #{head['seq']} {head['hash']}"
        )


class _Counted:
    def __init__(self, iterable: Iterable) -> None:
        self.iterable, self.count = iterable, 0

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            self.count += 1
            yield item


def _write(path: str, chunks: Iterable[str]) -> None:
    """Write through a temporary file renamed into place: a failed export leaves no partial
    file behind (nor replaces an older one). Like the log itself, the file is private to its
    owner (mode 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"cannot write {path}: no folder {folder}")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
