"""The provider contract: every provider passes these tests unchanged."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from kew import (
    AckMode,
    DeliveryOutcome,
    Message,
    PermanentError,
    QueueSink,
    QueueSource,
    RepeatAction,
)
from kew.codecs import BytesCodec
from kew.errors import ConfigurationError, UnsupportedCapability
from kew.message import utcnow
from kew.providers.base import Capability, DeliveryOptions, Outgoing
from tests.contract.helpers import WAIT, assert_empty, receive_all


def test_durable_send_and_receive(provider, queue):
    with provider.producer() as producer:
        producer.send(queue, b"hello", DeliveryOptions(durable=True))
    (delivery,) = receive_all(provider, queue, 1)
    assert delivery.payload == b"hello"
    assert delivery.queue == queue
    assert not delivery.redelivered
    assert_empty(provider, queue)


def test_messages_from_one_producer_arrive_in_order(provider, queue):
    with provider.producer() as producer:
        for i in range(20):
            producer.send(queue, str(i).encode())
    got = receive_all(provider, queue, 20)
    assert [d.payload for d in got] == [str(i).encode() for i in range(20)]


def test_send_many_stores_the_whole_batch_in_order(provider, queue):
    batch = [Outgoing(queue, f"m{i}".encode()) for i in range(50)]
    with provider.producer() as producer:
        producer.send_many(batch)
    got = receive_all(provider, queue, 50)
    assert [d.payload for d in got] == [o.payload for o in batch]


def test_prepared_messages_arrive_in_order_with_their_ids_and_properties(provider, queue):
    # prepare() checks and encodes without a producer (the relay prepares a batch ahead).
    options = [DeliveryOptions(message_id=f"id-{i}", properties={"n": str(i)}) for i in range(30)]
    prepared = [provider.prepare(Outgoing(queue, f"m{i}".encode(), options[i])) for i in range(30)]
    with provider.producer() as producer:
        producer.send_prepared(prepared)
    got = receive_all(provider, queue, 30)
    assert [d.payload for d in got] == [f"m{i}".encode() for i in range(30)]
    assert [d.message_id for d in got] == [f"id-{i}" for i in range(30)]
    assert [d.properties["n"] for d in got] == [str(i) for i in range(30)]


def test_prepare_refuses_what_validate_refuses(provider, queue):
    with pytest.raises(ConfigurationError, match="property"):
        provider.prepare(Outgoing(queue, b"x", DeliveryOptions(properties={"bad name": "x"})))
    with pytest.raises(ConfigurationError, match="queue"):
        provider.prepare(Outgoing("", b"x"))


def test_scheduled_delivery_not_before_its_time(provider, queue):
    if Capability.SCHEDULED_DELIVERY not in provider.capabilities:
        pytest.skip("provider declares no scheduled delivery")
    due = utcnow() + timedelta(seconds=2)
    with provider.producer() as producer:
        producer.send(queue, b"later", DeliveryOptions(deliver_at=due))
        producer.send(queue, b"now")
    with provider.receiver(queue) as consumer:
        first = consumer.receive(WAIT)
        assert first is not None and first.payload == b"now"
        first.ack()
        early = consumer.receive(1.0)
        assert early is None, "a scheduled message came before its time"
        late = consumer.receive(WAIT)
        arrived = utcnow()
        assert late is not None and late.payload == b"later"
        late.ack()
    assert arrived >= due - timedelta(milliseconds=100)
    assert arrived <= due + timedelta(seconds=5)


def test_properties_round_trip(provider, queue):
    properties = {"tenant": "mri-lab", "kind": "thumbnail", "unicode": "Zürich ✓", "empty": ""}
    with provider.producer() as producer:
        producer.send(queue, b"x", DeliveryOptions(properties=properties))
    (delivery,) = receive_all(provider, queue, 1)
    for name, value in properties.items():
        assert delivery.properties.get(name) == value


def test_message_id_round_trips(provider, queue):
    message_id = "5f0c6a52-3d1e-4c1b-9d7e-0a2b3c4d5e6f"
    with provider.producer() as producer:
        producer.send(queue, b"x", DeliveryOptions(message_id=message_id))
    (delivery,) = receive_all(provider, queue, 1)
    assert delivery.message_id == message_id


def test_duplicate_message_id_is_stored_once_or_kept_as_declared(provider, queue):
    """With DEDUPLICATION the second copy is dropped; without it both arrive, ids intact.

    A provider that declares no duplicate detection must not drop anything
    either: the idempotent consumer recognises the copy by its message id.
    """
    with provider.producer() as producer:
        producer.send(queue, b"first", DeliveryOptions(message_id="dup-1"))
        producer.send(queue, b"second", DeliveryOptions(message_id="dup-1"))
        producer.send(queue, b"other", DeliveryOptions(message_id="dup-2"))
    if Capability.DEDUPLICATION in provider.capabilities:
        got = receive_all(provider, queue, 2)
        assert [d.payload for d in got] == [b"first", b"other"]
    else:
        got = receive_all(provider, queue, 3)
        assert [(d.payload, d.message_id) for d in got] == [
            (b"first", "dup-1"),
            (b"second", "dup-1"),
            (b"other", "dup-2"),
        ]
    assert_empty(provider, queue)


def test_unacked_message_comes_back_after_its_consumer_goes_away(provider, queue):
    with provider.producer() as producer:
        producer.send(queue, b"fragile")
    consumer = provider.receiver(queue)
    delivery = consumer.receive(WAIT)
    assert delivery is not None and delivery.payload == b"fragile"
    consumer.close()  # no ack
    (again,) = receive_all(provider, queue, 1)
    assert again.payload == b"fragile"
    assert again.redelivered
    assert_empty(provider, queue)


def test_acked_message_does_not_come_back(provider, queue):
    with provider.producer() as producer:
        producer.send(queue, b"done")
    with provider.receiver(queue) as consumer:
        consumer.receive(WAIT).ack()
    assert_empty(provider, queue)


class Flaky:
    """A sink whose first call raises."""

    def __init__(self):
        self.calls = []

    def __call__(self, data):
        self.calls.append(data)
        if len(self.calls) == 1:
            raise RuntimeError("first attempt fails")


def test_consume_then_ack_redelivers_after_a_failure(provider, queue):
    QueueSource(provider, queue).send({"n": 1})
    flaky = Flaky()
    sink = QueueSink(provider, queue, flaky, ack_mode=AckMode.CONSUME_THEN_ACK)
    deadline = time.monotonic() + WAIT
    while len(flaky.calls) < 2 and time.monotonic() < deadline:
        sink.poll(0.5)
    sink.close()
    assert flaky.calls == [{"n": 1}, {"n": 1}]
    assert_empty(provider, queue)


def test_ack_then_consume_does_not_redeliver_after_a_failure(provider, queue):
    QueueSource(provider, queue).send({"n": 1})
    flaky = Flaky()
    sink = QueueSink(provider, queue, flaky, ack_mode=AckMode.ACK_THEN_CONSUME)
    assert sink.poll(WAIT)
    assert not sink.poll(1.0)
    sink.close()
    assert flaky.calls == [{"n": 1}]
    assert_empty(provider, queue)


def test_a_handler_answering_retry_is_retried_on_schedule_then_exhausted_once(provider, queue):
    if Capability.SCHEDULED_DELIVERY not in provider.capabilities:
        pytest.skip("provider declares no scheduled delivery")
    seen: list[float] = []
    exhausted = []

    def always_retry(data):
        seen.append(time.monotonic())
        return RepeatAction.RETRY

    source = QueueSource(provider, queue)
    sink = QueueSink(
        provider,
        queue,
        always_retry,
        retry=[0.5, 1.0],
        on_exhausted=lambda data, error: exhausted.append(data),
    )
    source.send_message(Message({"job": 7}, message_id="job-7"))
    deadline = time.monotonic() + WAIT
    while not exhausted and time.monotonic() < deadline:
        sink.poll(0.2)
    while sink.poll(1.0):  # nothing more may come
        pass
    sink.close()
    source.close()
    assert exhausted == [{"job": 7}]
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.4
    assert seen[2] - seen[1] >= 0.9


def test_a_handler_answering_stop_after_retry_is_not_retried_again(provider, queue):
    answers = [RepeatAction.RETRY, RepeatAction.STOP]
    calls = []

    def handler(data):
        calls.append(data)
        return answers[len(calls) - 1]

    source = QueueSource(provider, queue)
    sink = QueueSink(provider, queue, handler, retry=[0.1, 0.1])
    source.send("work")
    deadline = time.monotonic() + WAIT
    while len(calls) < 2 and time.monotonic() < deadline:
        sink.poll(0.2)
    assert not sink.poll(1.0)
    sink.close()
    assert calls == ["work", "work"]


def test_queue_sink_retries_on_its_schedule_then_gives_up_once(provider, queue):
    if Capability.SCHEDULED_DELIVERY not in provider.capabilities:
        pytest.skip("provider declares no scheduled delivery")
    seen: list[float] = []
    exhausted = []

    def always_fails(data):
        seen.append(time.monotonic())
        raise RuntimeError(f"no luck with {data['job']}")

    sink = QueueSink(
        provider,
        queue,
        always_fails,
        retry=[0.5, 1.0],
        on_exhausted=lambda data, error: exhausted.append((data, error)),
    )
    QueueSource(provider, queue).send_message(Message({"job": 7}, message_id="job-7"))
    deadline = time.monotonic() + WAIT
    while not exhausted and time.monotonic() < deadline:
        sink.poll(0.2)
    sink.close()
    assert [data for data, _ in exhausted] == [{"job": 7}]
    assert isinstance(exhausted[0][1], RuntimeError)
    assert sink.stats.counts[DeliveryOutcome.RETRIED] == 2
    assert sink.stats.counts[DeliveryOutcome.DEAD] == 1
    assert seen[1] - seen[0] >= 0.4 and seen[2] - seen[1] >= 0.9
    assert_empty(provider, queue)


def test_queue_sink_gives_up_at_once_on_a_permanent_error(provider, queue):
    exhausted = []

    def refuse(data):
        raise PermanentError("cannot be done")

    sink = QueueSink(
        provider, queue, refuse, retry="10s", on_exhausted=lambda d, e: exhausted.append(e)
    )
    QueueSource(provider, queue).send({"n": 1})
    assert sink.poll(WAIT)
    sink.close()
    assert isinstance(exhausted[0], PermanentError)
    assert_empty(provider, queue)


def test_queue_sink_gives_up_on_an_undecodable_payload_and_carries_on(provider, queue):
    calls = []
    with provider.producer() as producer:
        producer.send(queue, b"\xffnot json")
        producer.send(queue, b'{"n": 2}')
    sink = QueueSink(provider, queue, calls.append, retry="10s")
    deadline = time.monotonic() + WAIT
    while not calls and time.monotonic() < deadline:
        sink.poll(0.5)
    sink.close()
    assert calls == [{"n": 2}]
    assert sink.stats.counts[DeliveryOutcome.DEAD] == 1
    assert_empty(provider, queue)


@pytest.mark.parametrize(
    "payload",
    [bytes(range(256)) * 4, "Grüße, 世界, 🔬".encode(), b"\x00\x00nul\x00", b""],
    ids=["binary", "unicode", "nul-bytes", "empty"],
)
def test_binary_and_unicode_payloads_round_trip(provider, queue, payload):
    with provider.producer() as producer:
        producer.send(queue, payload)
    (delivery,) = receive_all(provider, queue, 1)
    assert delivery.payload == payload


def test_large_payload_round_trips(provider, queue):
    payload = bytes(i % 251 for i in range(1024 * 1024))
    source = QueueSource(provider, queue, codec=BytesCodec())
    source.send(payload)
    source.close()
    (delivery,) = receive_all(provider, queue, 1)
    assert len(delivery.payload) == len(payload)
    assert delivery.payload == payload


def test_two_consumers_never_get_the_same_message(provider, queue):
    count = 40
    with provider.producer() as producer:
        producer.send_many([Outgoing(queue, str(i).encode()) for i in range(count)])
    got: list[bytes] = []
    lock = threading.Lock()

    def drain():
        with provider.receiver(queue) as consumer:
            while True:
                delivery = consumer.receive(1.5)
                if delivery is None:
                    return
                delivery.ack()
                with lock:
                    got.append(delivery.payload)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert sorted(got, key=int) == [str(i).encode() for i in range(count)]


def test_a_provider_counts_its_queue_only_if_it_says_it_can(provider, queue):
    if Capability.QUEUE_DEPTH not in provider.capabilities:
        with pytest.raises(UnsupportedCapability):
            provider.pending(queue)
        return
    assert provider.pending(queue) == 0
    with provider.producer() as producer:
        producer.send_many([Outgoing(queue, b"%d" % i) for i in range(3)])
    assert provider.pending(queue) == 3
    receive_all(provider, queue, 3)
    assert provider.pending(queue) == 0
