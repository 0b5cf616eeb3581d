"""Walk each organization's activity hash chain and name the first broken link (SPEC 3.7);
with --state, also replay it and name every stored version it does not explain (SPEC 3.2);
or, with --file, verify an export of it offline (no database is opened)."""

from django.core.management.base import BaseCommand, CommandError

from registry.audit import CHAINED_FIELDS, BrokenLink, verify_chain
from registry.consistency import state_drift
from registry.export import Verified, verify_file
from registry.models import ActivityChain, ActivityEvent, Organization

# Rows fetched per round trip: the walk holds one chunk at a time, whatever the chain length.
CHUNK_SIZE = 2000


class Command(BaseCommand):
    help = (
        "Verify the hash chain of every organization's activity log (or one, with --org); "
        "exit non-zero if any chain is broken, naming its first broken link. With --state, "
        "also replay each log and compare it with the stored versions (stage, lock level, "
        "label, digest, and the digest their ingredients give), naming every change that went "
        "around the services. With --file, verify an export (export_activity, or the API's) "
        "offline instead, naming its first broken line."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="verify only this organization")
        parser.add_argument(
            "--file", metavar="EXPORT", help="verify this export file, with no database"
        )
        parser.add_argument(
            "--state",
            action="store_true",
            help="also compare the stored versions with what the activity log says",
        )

    def handle(
        self,
        *args,
        org: str | None = None,
        file: str | None = None,
        state: bool = False,
        **options,
    ) -> None:
        if file is not None:
            if org is not None or state:
                raise CommandError("--file verifies the file alone: leave out --org and --state")
            self.verify_export(file)
            return
        orgs = Organization.objects.order_by("slug")
        if org is not None:
            orgs = orgs.filter(slug=org)
            if not orgs.exists():
                raise CommandError(f"organization {org} not found")
        broken, drifted = [], []
        for organization in orgs.iterator():
            checked, link = verify_org(organization)
            if link is None:
                self.stdout.write(f"{organization.slug}: {checked} events, chain intact")
            else:
                broken.append(organization.slug)
                self.stderr.write(
                    self.style.ERROR(f"{organization.slug}: broken at {link}")
                    + f" ({checked} events intact before it)"
                )
            if state and not self.verify_state(organization):
                drifted.append(organization.slug)
        problems = []
        if broken:
            problems.append(
                f"the activity chain of {len(broken)} organization(s) is broken: "
                + ", ".join(broken)
            )
        if drifted:
            problems.append(
                f"the stored versions of {len(drifted)} organization(s) differ from the "
                "activity log (changed around the services): " + ", ".join(drifted)
            )
        if problems:
            raise CommandError("; ".join(problems))

    def verify_state(self, org: Organization) -> bool:
        compared, drifts = state_drift(org)
        if not drifts:
            self.stdout.write(f"{org.slug}: {compared} version(s), as the activity log says")
            return True
        for drift in drifts:
            self.stderr.write(self.style.ERROR(f"{org.slug}: {drift}"))
        return False

    def verify_export(self, path: str) -> None:
        try:
            result = verify_file(path)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text: not an activity export") from None
        if not result.ok:
            self.stderr.write(self.style.ERROR(f"{path}: broken at {result.problem}"))
            raise CommandError(f"the export {path} is broken at line {result.problem.line}")
        self.stdout.write(f"{path}: {describe(result)}")


def describe(result: Verified) -> str:
    """One line saying what a verified export proves, and the head to compare with a copy
    kept elsewhere (the file alone cannot tell a consistent forgery of the whole chain)."""
    header, head = result.header, result.header["head"]
    text = f"{result.events} events of {header['org']} verified ({result.format}); "
    if result.complete:
        text += "complete: linked from event #1 to the chain head"
    else:
        filters = header["filters"]
        shown = [
            f"{name} {filters[name]}"
            for name in ("model", "version", "since", "until")
            if filters[name] is not None
        ]
        if filters["scope"] == "viewable":
            shown.append("only models the exporter may view")
        text += f"filtered ({', '.join(shown)}): every event and every consecutive run verified"
        text += f", {result.gaps} gap(s) where events outside the filter were left out"
    return text + f"; chain head #{head['seq']} {head['hash']} at {header['exported_at']}"


def verify_org(org: Organization) -> tuple[int, BrokenLink | None]:
    """Stream one org's events in seq order through the pure chain check of registry.audit."""
    head = ActivityChain.objects.filter(org=org).values("seq", "head").first()
    events = (
        ActivityEvent.objects.filter(org=org)
        .order_by("seq")
        .values(*CHAINED_FIELDS, "prev_hash", "hash")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    checked, link = verify_chain(
        events,
        head_seq=head["seq"] if head else None,
        head_hash=head["head"] if head else None,
    )
    if link is None and head is None and checked:
        # Events without a head: the head row itself was removed, so the end is unprovable.
        link = BrokenLink(None, "the chain head record is missing")
    return checked, link
