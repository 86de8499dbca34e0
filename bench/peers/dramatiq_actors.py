"""dramatiq's side: a RabbitMQ broker with publisher confirms and the one-insert actor."""

import os

import django
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
django.setup()

from bench.peers.app.handler import record  # noqa: E402

broker = RabbitmqBroker(url=os.environ["PEERS_AMQP_URL"], confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench_peers_dramatiq", max_retries=3)
def handle(n: int, path: str) -> None:
    record("dramatiq", n)
