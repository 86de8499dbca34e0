"""One trace: a Django request -> outbox row -> relay -> provider (or a direct send) -> consumer."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from kew_django import Channel, PermanentError
from kew_django.models import DeadLetter, OutboxMessage
from kew_django.observability.tracing import Tracing, messaging_system
from kew_django.operations import requeue_dead_letters
from kew_django.relay.publisher import Relay
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker, WorkerStats
from tests.kew_django.conftest import Job, written
from tests.kew_django.observability.helpers import running, wait_until


def by_name(spans, name):
    return [span for span in spans.get_finished_spans() if span.name == name]


@override_settings(ROOT_URLCONF="tests.kew_django.observability.urls")
def test_one_trace_from_the_request_through_the_outbox_to_the_consumer_and_its_retry(
    outbox_sends, provider, queue, spans
):
    tracing = Tracing(system=messaging_system(provider))
    seen: list[tuple[int, int]] = []  # (trace id, parent span id) the handler ran in

    def handler(job: Job) -> None:
        context = trace.get_current_span().get_span_context()
        seen.append((context.trace_id, context.span_id))
        if len(seen) == 1:
            raise ValueError("the first delivery fails")

    with trace.get_tracer("test").start_as_current_span("GET /send") as request_span:
        assert Client().get("/send", {"queue": queue, "n": "1"}).status_code == 200
    trace_id = request_span.get_span_context().trace_id
    (row,) = OutboxMessage.objects.filter(queue=queue)
    assert row.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"

    stats = WorkerStats()
    spec = ConsumerSpec(queue, handler, payload=Job, retry="10ms")
    worker = Worker(spec, provider, poll_interval=0.2, stats=stats, observer=tracing)
    relay = Relay(provider, queues=[queue], poll_interval=0.1, observer=tracing)
    with running(relay=relay, workers=[worker]):
        wait_until(lambda: stats.counts[DeliveryOutcome.HANDLED] == 1, what="the retry handled")

    (create,) = by_name(spans, f"create {queue}")
    sends = by_name(spans, f"send {queue}")
    # A publish the broker refused (RabbitMQ can nack the first publish to a
    # quorum queue declared a moment before) is a span of its own, marked as
    # an error, and the relay sends the row again: exactly one send succeeds.
    (send,) = [span for span in sends if span.status.status_code is not StatusCode.ERROR]
    processes = by_name(spans, f"process {queue}")
    assert len(processes) == 2  # the failed delivery and its retry
    assert create.parent.span_id == request_span.get_span_context().span_id
    for each in sends:
        assert [link.context.span_id for link in each.links] == [create.context.span_id]
    for process in processes:
        assert process.context.trace_id == trace_id
        assert process.parent.span_id == create.context.span_id
        assert process.kind is trace.SpanKind.CONSUMER
        assert process.attributes["messaging.system"] == messaging_system(provider)
        assert process.attributes["messaging.destination.name"] == queue
        assert process.attributes["messaging.operation.type"] == "process"
    counts = sorted(p.attributes["messaging.message.delivery_count"] for p in processes)
    assert counts == [1, 2]
    assert sorted(p.attributes["kew.outcome"] for p in processes) == ["handled", "retried"]
    assert processes[0].attributes["messaging.message.id"] == str(row.id)
    assert {tid for tid, _ in seen} == {trace_id}  # the handler ran inside the consumer span


@override_settings(ROOT_URLCONF="tests.kew_django.observability.urls")
def test_one_trace_from_the_request_through_a_direct_send_to_the_consumer(
    database_provider, queue, spans
):
    tracing = Tracing(system="kew_database")
    seen: list[int] = []  # the trace id the handler ran in

    def handler(job: Job) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    with trace.get_tracer("test").start_as_current_span("GET /send") as request_span:
        assert Client().get("/send", {"queue": queue, "n": "1"}).status_code == 200
    trace_id = request_span.get_span_context().trace_id
    (row,) = written(queue)
    assert row.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"

    stats = WorkerStats()
    spec = ConsumerSpec(queue, handler, payload=Job)
    worker = Worker(spec, database_provider, poll_interval=0.2, stats=stats, observer=tracing)
    with running(workers=[worker]):
        wait_until(lambda: stats.counts[DeliveryOutcome.HANDLED] == 1, what="the message handled")

    (create,) = by_name(spans, f"create {queue}")
    assert not by_name(spans, f"send {queue}")  # no relay hop
    (process,) = by_name(spans, f"process {queue}")
    assert create.parent.span_id == request_span.get_span_context().span_id
    assert process.context.trace_id == trace_id
    assert process.parent.span_id == create.context.span_id
    assert process.attributes["messaging.message.id"] == row.message_id
    assert seen == [trace_id]


def test_a_requeued_dead_letter_stays_in_the_original_trace(database_provider, queue, spans):
    tracing = Tracing(system="kew_database")

    def handler(job: Job) -> None:
        raise PermanentError("never works")

    with trace.get_tracer("test").start_as_current_span("request") as request_span:
        Channel(queue, payload=Job).send(Job(1))
    stats = WorkerStats()
    worker = Worker(
        ConsumerSpec(queue, handler, payload=Job, retry="10ms"),
        database_provider,
        poll_interval=0.2,
        stats=stats,
        observer=tracing,
    )
    relay = Relay(database_provider, queues=[queue], poll_interval=0.1, observer=tracing)
    with running(relay=relay, workers=[worker]):
        wait_until(lambda: DeadLetter.objects.filter(queue=queue).exists(), what="dead letter")
    requeue_dead_letters(DeadLetter.objects.filter(queue=queue))
    (requeued,) = OutboxMessage.objects.filter(queue=queue, status="pending")
    trace_id = request_span.get_span_context().trace_id
    assert requeued.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"


GIVEN = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


@pytest.mark.parametrize("headers", [{}, {"traceparent": GIVEN}])
def test_without_a_current_span_nothing_is_added_and_a_given_context_is_kept(db, queue, headers):
    Channel(queue, payload=Job).send(Job(1), properties=headers)
    (row,) = written(queue)
    assert row.headers.get("traceparent") == headers.get("traceparent")
