"""A real Prometheus scrapes a running relay and consumer; the counts read back match."""

from __future__ import annotations

import pytest

from kew_django import Channel
from kew_django.models import DeadLetter
from kew_django.observability import Observability
from kew_django.relay.publisher import Relay
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker, WorkerStats
from tests.kew_django.conftest import Job
from tests.kew_django.observability.helpers import running, wait_until

pytestmark = pytest.mark.slow


def test_prometheus_reads_back_sent_handled_retried_and_dead(
    outbox_sends, provider, queue, prometheus_factory
):  # "sent" is the relay's counter: direct sends are not in it
    attempts: dict[int, int] = {}

    def handler(job: Job) -> None:
        attempts[job.n] = attempts.get(job.n, 0) + 1
        if job.note == "dead" or (job.note == "flaky" and attempts[job.n] == 1):
            raise ValueError(f"job {job.n} fails ({job.note})")

    jobs = [Job(n) for n in range(7)] + [Job(7, "flaky"), Job(8, "flaky"), Job(9, "dead")]
    Channel(queue, payload=Job).send_many(jobs)
    relaying = Observability(kind="relay", queues=[queue], provider=provider, port=0, record=False)
    consuming = Observability(
        kind="consume", queues=[queue], provider=provider, port=0, record=False
    )
    relay = Relay(provider, queues=[queue], poll_interval=0.1, observer=relaying.observer)
    stats = WorkerStats()
    spec = ConsumerSpec(queue, handler, payload=Job, retry="10ms 10ms")
    worker = Worker(spec, provider, poll_interval=0.2, stats=stats, observer=consuming.observer)
    relaying.start()
    consuming.start()
    try:
        with running(relay=relay, workers=[worker]):
            wait_until(
                lambda: (
                    stats.counts[DeliveryOutcome.HANDLED] == 9
                    and stats.counts[DeliveryOutcome.DEAD] == 1
                ),
                what=f"9 handled and 1 dead: {stats.counts}",
            )
            assert DeadLetter.objects.filter(queue=queue).count() == 1
            prometheus = prometheus_factory(
                [f"127.0.0.1:{relaying.port}", f"127.0.0.1:{consuming.port}"]
            )
            on = f'messaging_destination_name="{queue}"'
            expected = {
                f"sum(messaging_client_sent_messages_total{{{on}}})": 10,
                f'sum(messaging_client_consumed_messages_total{{{on},kew_outcome="handled"}})': 9,
                f'sum(messaging_client_consumed_messages_total{{{on},kew_outcome="retried"}})': 4,
                f'sum(messaging_client_consumed_messages_total{{{on},kew_outcome="dead"}})': 1,
                f"sum(messaging_process_duration_seconds_count{{{on}}})": 14,
                f"max(kew_dead_letters{{{on}}})": 1,
                f"max(kew_outbox_backlog_messages{{{on}}})": 0,
                f"max(kew_outbox_oldest_pending_age_seconds{{{on}}})": 0,
                f"sum(kew_consumer_in_progress_messages{{{on}}})": 0,
                'count(up{job="kew"} == 1)': 2,
            }
            found = {query: prometheus.wait_for(query, value) for query, value in expected.items()}
            assert found == expected, prometheus.log_tail(20)
            batches = prometheus.query(
                'sum(messaging_client_operation_duration_seconds_count{messaging_operation_name="send"})'
            )
            assert batches is not None and batches >= 1
    finally:
        relaying.close()
        consuming.close()
