"""manage.py kew_relay: publish committed outbox rows to the provider."""

import logging
import threading

from django.core.management.base import BaseCommand, CommandError

from kew.errors import ConfigurationError
from kew_django.db.connections import close_db_connections
from kew_django.observability import Observability
from kew_django.runner import relay_from_settings, stop_on_signals

log = logging.getLogger("kew_django.relay.publisher")


class Command(BaseCommand):
    help = "Publish committed outbox messages to the message provider (see KEW['RELAY'])."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="relay what is pending now, then exit"
        )
        parser.add_argument("--batch-size", type=int, help="rows per broker confirmation")
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="QUEUE",
            help="relay only this queue (repeatable)",
        )
        parser.add_argument("--provider", default="default", help="KEW['PROVIDERS'] alias")
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="serve /metrics /healthz /readyz on this port (0: any free one)",
        )

    def handle(self, *args, once, batch_size, queues, provider, metrics_port=None, **options):
        relay = relay_from_settings(provider=provider, batch_size=batch_size, queues=queues)
        if once:
            try:
                settled = relay.relay_all()
            finally:
                close_db_connections()
            self.stdout.write(f"relayed {settled} message(s); {relay.progress_line()}")
            return
        stop = threading.Event()
        stop_on_signals(stop)
        log.info("relay: started (batch size %d)", relay.batch_size)
        try:
            observability = Observability(
                kind="relay", queues=queues or [], provider=relay.provider, port=metrics_port
            ).start()
        except ConfigurationError as error:
            raise CommandError(str(error)) from None
        relay.observer = observability.observer
        try:
            relay.run(stop)
        finally:
            observability.close()
        log.info("%s; stopped", relay.progress_line())
