"""manage.py kew_run: the relay and every consumer in one process (development, embedded)."""

from django.core.management.base import BaseCommand

from kew_django.management.commands.kew_consume import select_specs
from kew_django.runner import Runner, relay_from_settings, stop_on_signals


class Command(BaseCommand):
    help = "Run the outbox relay and all registered consumers in one process."

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", metavar="QUEUE")
        parser.add_argument("--concurrency", type=int, help="worker threads per queue")
        parser.add_argument("--provider", default="default", help="KEW['PROVIDERS'] alias")

    def handle(self, *args, queues, concurrency, provider, **options):
        relay = relay_from_settings(provider=provider)
        runner = Runner(select_specs(queues), relay=relay, provider=provider,
                        concurrency=concurrency)
        stop_on_signals(runner.stop)
        runner.run()
