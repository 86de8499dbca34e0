"""manage.py kew_relay: publish committed outbox rows to the provider."""

import logging
import threading

from django.core.management.base import BaseCommand

from kew_django.db.connections import close_db_connections
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

    def handle(self, *args, once, batch_size, queues, provider, **options):
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
        relay.run(stop)
        log.info("%s; stopped", relay.progress_line())
