"""An OpenTelemetry SDK recording to memory, installed once for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _span_exporter():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)  # once per process: OpenTelemetry's rule
    return exporter


@pytest.fixture
def spans(_span_exporter):
    """The in-memory exporter, emptied for the test; ``spans.get_finished_spans()``."""
    _span_exporter.clear()
    yield _span_exporter
    _span_exporter.clear()
