"""Celery's side: RabbitMQ with publisher confirms, acks_late, and the one-insert task."""

import os

import django
from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
django.setup()

from bench.peers.app.handler import record  # noqa: E402

app = Celery("peers", broker=os.environ["PEERS_AMQP_URL"])
app.conf.update(
    task_acks_late=True,  # ack after the handler returns, as Kew and dramatiq do
    task_default_queue="bench_peers_celery",
    task_default_delivery_mode="persistent",
    broker_transport_options={"confirm_publish": True},
    worker_prefetch_multiplier=int(os.environ.get("PEERS_PREFETCH", "100")),
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    from django.db import connections

    for connection in connections.all():  # never share the parent's socket after fork
        connection.close()


@app.task(name="bench.peers.handle")
def handle(n: int, path: str) -> None:
    record("celery", n)
