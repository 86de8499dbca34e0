"""OpenTelemetry traces through the outbox: send -> outbox row -> relay -> consumer.

``outbox_headers`` puts the sender's trace context in an outbox row's
headers (``Channel.send`` calls it); ``Tracing`` is the observer that opens
the relay's and the worker's spans. Nothing happens without the
OpenTelemetry API (``kew[tracing]``). The spans: docs/operations.md#traces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from kew.providers.base import Provider
from kew.providers.headers import delivery_count
from kew.qchan.observe import Handling
from kew_django.observability.observer import Observer

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the tracing extra is not installed
    trace = None  # type: ignore[assignment]

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
TRACER_NAME = "kew"


def available() -> bool:
    """Return whether the OpenTelemetry API is installed."""
    return trace is not None


def messaging_system(provider: Provider) -> str:
    """Return the ``messaging.system`` of ``provider`` (OpenTelemetry's name where one exists)."""
    name = type(provider).__name__
    return {"ArtemisProvider": "activemq", "DatabaseProvider": "kew_database"}.get(
        name, name.removesuffix("Provider").lower() or "kew"
    )


def outbox_headers(queue: str, headers: dict[str, str], count: int) -> dict[str, str]:
    """Return ``headers`` with the trace context of a new ``create`` span, if tracing is on."""
    if trace is None or TRACEPARENT in headers:
        return headers
    if not trace.get_current_span().get_span_context().is_valid:
        return headers  # no trace to continue: a message sent outside any span carries none
    tracer = trace.get_tracer(TRACER_NAME)
    attributes: dict[str, Any] = {
        "messaging.destination.name": queue,
        "messaging.operation.type": "create",
        "messaging.operation.name": "create",
    }
    if count > 1:
        attributes["messaging.batch.message_count"] = count
    span = tracer.start_span(f"create {queue}", kind=trace.SpanKind.PRODUCER, attributes=attributes)
    try:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    finally:
        span.end()
    return {**headers, **carrier} if carrier else headers


def _span_context(properties: Mapping[str, str]) -> Any:
    """Return the span context carried by ``properties``, or None."""
    if TRACEPARENT not in properties:
        return None
    context = TraceContextTextMapPropagator().extract(dict(properties))
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


class Tracing(Observer):
    """Spans for the relay's batches and the workers' deliveries (see the module docstring)."""

    def __init__(self, *, system: str):
        if trace is None:
            raise RuntimeError("tracing needs the OpenTelemetry API: pip install 'kew[tracing]'")
        self.system = system
        self.tracer = trace.get_tracer(TRACER_NAME)

    def handling(self, seen: Handling) -> AbstractContextManager[object]:
        return self._process(seen)

    @contextmanager
    def _process(self, seen: Handling) -> Iterator[None]:
        delivery = seen.delivery
        context = TraceContextTextMapPropagator().extract(dict(delivery.properties))
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.destination.name": seen.queue,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.delivery_count": delivery_count(delivery),
        }
        if delivery.message_id:
            attributes["messaging.message.id"] = delivery.message_id
        with self.tracer.start_as_current_span(
            f"process {seen.queue}",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            yield
            if seen.outcome is not None:
                span.set_attribute("kew.outcome", seen.outcome.value)

    def publishing(self, rows: Sequence[Any]) -> AbstractContextManager[object]:
        return self._send(rows)

    @contextmanager
    def _send(self, rows: Sequence[Any]) -> Iterator[None]:
        queues = {row.queue for row in rows}
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.batch.message_count": len(rows),
        }
        if len(queues) == 1:
            attributes["messaging.destination.name"] = next(iter(queues))
        links = []
        if self.tracer_records():
            for row in rows:
                span_context = _span_context(row.headers or {})
                if span_context is not None:
                    links.append(trace.Link(span_context, {"messaging.message.id": str(row.id)}))
        name = f"send {next(iter(queues))}" if len(queues) == 1 else "send"
        with self.tracer.start_as_current_span(
            name, kind=trace.SpanKind.PRODUCER, attributes=attributes, links=links
        ):
            yield

    def tracer_records(self) -> bool:
        """Return whether spans are recorded (an SDK is configured): links cost a parse per row."""
        return trace.get_current_span().is_recording() or not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
