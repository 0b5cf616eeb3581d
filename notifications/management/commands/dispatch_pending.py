"""Sweep the notification outbox (SPEC 3.8): enqueue events that were never dispatched and
deliveries that nobody holds and are due, e.g. after a broker outage or a dead worker."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from notifications.tasks import sweep


class Command(BaseCommand):
    help = "Enqueue undispatched activity events and due deliveries (the outbox sweep)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            help="seconds an event or delivery must have waited (default NOTIFY_SWEEP_AFTER, "
            f"now {settings.NOTIFY_SWEEP_AFTER})",
        )

    def handle(self, *args, older_than=None, **options):
        counts = sweep(older_than=older_than)
        self.stdout.write(
            f"enqueued {counts['events_enqueued']} of {counts['events']} events and "
            f"{counts['deliveries_enqueued']} of {counts['deliveries']} deliveries"
        )
        if (
            counts["events_enqueued"] < counts["events"]
            or counts["deliveries_enqueued"] < counts["deliveries"]
        ):
            raise CommandError("the broker refused some messages; run the sweep again later")
