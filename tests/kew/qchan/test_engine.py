"""The engine's retry rule, one delivery at a time on the memory provider (no waiting)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from kew import (
    DeliveryOutcome,
    Message,
    PermanentError,
    QueueSink,
    QueueSource,
    RepeatAction,
    Schedule,
)
from kew.message import utcnow
from kew.providers.base import Delivery, DeliveryOptions
from kew.providers.headers import DELIVERY_COUNT
from kew.providers.memory import MemoryProducer, MemoryProvider


class RecordingProvider(MemoryProvider):
    """A memory provider that keeps the options of every send."""

    def __init__(self):
        super().__init__()
        self.sent: list[DeliveryOptions] = []

    def producer(self) -> MemoryProducer:
        return RecordingProducer(self)


class RecordingProducer(MemoryProducer):
    provider: RecordingProvider

    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        self.provider.sent.append(options or DeliveryOptions())
        super().send(queue, payload, options)


@pytest.fixture
def provider() -> RecordingProvider:
    return RecordingProvider()


def deliver(provider: RecordingProvider, message: Message) -> Delivery:
    """Send ``message`` and take it off the queue, forgetting that send."""
    QueueSource(provider, "q").send_message(message)
    delivery = provider.receiver("q").receive(0)
    assert delivery is not None
    provider.sent.clear()
    return delivery


def engine(provider, handler, retry, exhausted: list) -> QueueSink:
    def on_exhausted(data, error):
        exhausted.append(data)

    return QueueSink(provider, "q", handler, retry=retry, on_exhausted=on_exhausted)


def test_a_handler_answering_retry_is_sent_again_after_the_next_interval(provider):
    sink = engine(provider, lambda data: RepeatAction.RETRY, [5, 60], exhausted := [])
    for count, delay in ((1, 5), (2, 60)):
        delivery = deliver(provider, Message("x", delivery_count=count))
        before = utcnow()
        assert sink.handle(delivery) is DeliveryOutcome.RETRIED
        (retry,) = provider.sent
        due = retry.deliver_at - timedelta(seconds=delay)
        assert before <= due <= utcnow()
        assert retry.properties[DELIVERY_COUNT] == str(count + 1)
    assert exhausted == []


def test_exhausted_runs_once_after_the_last_interval(provider):
    sink = engine(provider, lambda data: RepeatAction.RETRY, [5], exhausted := [])
    delivery = deliver(provider, Message("x", delivery_count=2))
    assert sink.handle(delivery) is DeliveryOutcome.DEAD
    assert exhausted == ["x"] and provider.sent == []
    assert provider.pending("q") == 0


@pytest.mark.parametrize("answer", [RepeatAction.STOP, None])
def test_a_handler_answering_stop_or_nothing_is_done(provider, answer):
    sink = engine(provider, lambda data: answer, [5], exhausted := [])
    assert sink.handle(deliver(provider, Message("x"))) is DeliveryOutcome.HANDLED
    assert exhausted == [] and provider.sent == []


def test_an_exception_is_retried_and_a_permanent_error_gives_up_at_once(provider):
    def fails(data):
        raise (PermanentError if data == "permanent" else OSError)(data)

    sink = engine(provider, fails, [60], exhausted := [])
    assert sink.handle(deliver(provider, Message("io"))) is DeliveryOutcome.RETRIED
    assert provider.sent[0].deliver_at is not None
    assert sink.handle(deliver(provider, Message("permanent"))) is DeliveryOutcome.DEAD
    assert exhausted == ["permanent"] and provider.sent == []


def test_an_empty_schedule_goes_straight_to_exhausted(provider):
    sink = engine(provider, lambda data: RepeatAction.RETRY, [], exhausted := [])
    assert sink.handle(deliver(provider, Message("x"))) is DeliveryOutcome.DEAD
    assert exhausted == ["x"] and provider.sent == []


def test_a_released_failure_comes_back_after_a_pause_that_grows():
    provider = MemoryProvider()
    QueueSource(provider, "q").send({"n": 1})
    runs: list[float] = []

    def failing(data):
        runs.append(time.monotonic())
        raise RuntimeError("fails every time")

    sink = QueueSink(provider, "q", failing)  # retry=None: left to the provider
    deadline = time.monotonic() + 10
    while len(runs) < 4 and time.monotonic() < deadline:
        sink.poll(0.2)
    sink.close()
    gaps = [later - earlier for earlier, later in zip(runs, runs[1:], strict=False)]
    assert len(gaps) == 3, runs
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0  # 0.5 s, doubling


def test_schedule_for_picks_each_message_its_own_schedule(provider):
    class PerMessage(QueueSink):
        def schedule_for(self, message):
            return Schedule.of(5, 5) if message.data == "patient" else Schedule()

    sink = PerMessage(provider, "q", lambda data: RepeatAction.RETRY, retry=[60])
    assert sink.handle(deliver(provider, Message("hasty"))) is DeliveryOutcome.DEAD
    before = utcnow()
    assert sink.handle(deliver(provider, Message("patient"))) is DeliveryOutcome.RETRIED
    (retry,) = provider.sent
    assert before <= retry.deliver_at - timedelta(seconds=5) <= utcnow()
