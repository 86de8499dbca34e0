"""manage.py kew_status: backlog, oldest pending, queued, in progress, dead letters per queue."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from kew_django.limits.status import format_limits, read_limits
from kew_django.observability.status import format_status, read_status
from kew_django.periodic_jobs.status import format_jobs, job_statuses


class Command(BaseCommand):
    help = (
        "Print per queue: outbox backlog, oldest pending row, rows in the database "
        "provider's queue, deliveries in progress, "
        "dead letters, failed rows; then the relay and consumer processes seen recently; "
        "then the periodic jobs with their last and next firing; "
        "then each limit: its values, slots in use, parked messages."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--recent",
            type=float,
            default=120.0,
            help="seconds: show processes seen within this time (default 120)",
        )

    def handle(self, *args, recent, **options):
        if recent <= 0:
            raise CommandError(f"--recent must be a positive number of seconds, not {recent}")
        window = timedelta(seconds=recent)
        for line in format_status(read_status(recent=window), recent=window):
            self.stdout.write(line)
        for line in format_jobs(job_statuses()):
            self.stdout.write(line)
        for line in format_limits(read_limits()):
            self.stdout.write(line)
