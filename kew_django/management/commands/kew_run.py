"""manage.py kew_run: the relay and every consumer in one process (development, embedded)."""

from kew_django.management.commands import kew_consume
from kew_django.management.commands.kew_consume import add_consumer_arguments, run_or_exit
from kew_django.observability import observed
from kew_django.runner import Runner, relay_from_settings, stop_on_signals


class Command(kew_consume.Command):
    """Take kew_consume's arguments but --processes; run the outbox relay beside the consumers."""

    help = (
        "Run the outbox relay and all registered consumers in one process "
        "(for several processes: kew_relay and kew_consume --processes N)."
    )

    def add_arguments(self, parser):
        add_consumer_arguments(parser)

    def handle(self, *args, queues, concurrency, provider, metrics_port=None, **options):
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
