"""manage.py kew_run: the relay and every consumer in one process (development, embedded)."""

from django.core.management.base import CommandError

from kew_django.management.commands import kew_consume
from kew_django.management.commands.kew_consume import run_or_exit
from kew_django.observability import observed
from kew_django.runner import Runner, relay_from_settings, stop_on_signals


class Command(kew_consume.Command):
    """Take kew_consume's arguments; run the outbox relay beside the consumers."""

    help = "Run the outbox relay and all registered consumers in one process."

    def handle(
        self, *args, queues, concurrency, provider, metrics_port=None, processes=1, **options
    ):
        if processes != 1:
            raise CommandError(
                "kew_run runs one process; for several, run kew_relay and kew_consume --processes N"
            )
        relay = relay_from_settings(provider=provider)
        runner = Runner(
            kew_consume.select_specs(queues),
            relay=relay,
            provider=provider,
            concurrency=concurrency,
        )
        stop_on_signals(runner.stop)
        with observed(runner, "run", metrics_port):
            run_or_exit(runner)
