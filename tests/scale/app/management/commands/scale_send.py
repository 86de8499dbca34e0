"""Send numbered messages to a queue: through the outbox (default) or straight to the provider."""

import json
import time
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction

from kew.providers.base import DeliveryOptions, Outgoing
from kew_django import Channel, get_provider


class Command(BaseCommand):
    help = "Send --count messages {n, ...} to QUEUE, in transactions of --batch."

    def add_arguments(self, parser):
        parser.add_argument("queue")
        parser.add_argument("--count", type=int, default=100)
        parser.add_argument("--start", type=int, default=0)
        parser.add_argument("--batch", type=int, default=100)
        parser.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
        parser.add_argument("--delay", type=float, default=0.0, help="deliver after this")
        parser.add_argument("--sleep", type=float, default=0.0, help="handler's sleep")
        parser.add_argument("--spin", type=float, default=0.0, help="handler's CPU seconds")
        parser.add_argument("--fail-first", action="store_true")
        parser.add_argument("--direct", action="store_true", help="skip the outbox")

    def handle(self, *args, queue, count, start, batch, pause, delay, direct, **options):
        channel = Channel(queue)
        producer = get_provider().producer() if direct else None
        for first in range(start, start + count, batch):
            numbers = range(first, min(first + batch, start + count))
            items = [self.payload(n, delay, options) for n in numbers]
            if producer is not None:
                producer.send_many(
                    [
                        Outgoing(
                            queue,
                            json.dumps(item).encode(),
                            DeliveryOptions(message_id=str(uuid.uuid4())),
                        )
                        for item in items
                    ]
                )
            elif delay:
                with transaction.atomic():
                    for item in items:
                        channel.send_after(item, timedelta(seconds=delay))
            else:
                with transaction.atomic():
                    channel.send_many(items)
            if pause:
                time.sleep(pause)
        if producer is not None:
            producer.close()
        self.stdout.write(f"sent {count} to {queue}")

    @staticmethod
    def payload(n, delay, options):
        item = {"n": n}
        if delay:
            item["due"] = time.time() + delay
        if options["sleep"]:
            item["sleep"] = options["sleep"]
        if options["spin"]:
            item["spin"] = options["spin"]
        if options["fail_first"]:
            item["fail_first"] = True
        return item
