"""The provider contract of a batch: ``Receiver.receive_ready`` (never a wait) and ``ack_many``."""

from __future__ import annotations

import time

from kew.providers.base import DeliveryOptions
from tests.contract.helpers import WAIT, assert_empty, receive_all

PREFETCH = 5


def test_receive_ready_on_an_empty_queue_returns_nothing_at_once(provider, queue):
    with provider.receiver(queue, prefetch=PREFETCH) as consumer:
        began = time.monotonic()
        assert consumer.receive_ready(PREFETCH) == []
        assert time.monotonic() - began < 1.0  # no wait (a broker's round trip at most)


def test_receive_ready_hands_over_what_the_receiver_holds_in_order(provider, queue):
    with provider.producer() as producer:
        for i in range(PREFETCH):
            producer.send(queue, f"m{i}".encode(), DeliveryOptions(message_id=f"id-{i}"))
    got = []
    deadline = time.monotonic() + WAIT
    with provider.receiver(queue, prefetch=PREFETCH) as consumer:
        first = consumer.receive(WAIT)
        assert first is not None
        got.append(first)
        while len(got) < PREFETCH:  # a broker pushes the rest while we ask
            assert time.monotonic() < deadline, f"only {len(got)} of {PREFETCH} in hand"
            got.extend(consumer.receive_ready(PREFETCH - len(got)))
        assert consumer.receive_ready(PREFETCH) == []  # never more than was sent
        for delivery in got:
            delivery.ack()
    assert [d.payload for d in got] == [f"m{i}".encode() for i in range(PREFETCH)]
    assert_empty(provider, queue)


def test_receive_ready_takes_at_most_its_limit(provider, queue):
    with provider.producer() as producer:
        for i in range(PREFETCH):
            producer.send(queue, f"m{i}".encode())
    deadline = time.monotonic() + WAIT
    with provider.receiver(queue, prefetch=PREFETCH) as consumer:
        first = consumer.receive(WAIT)
        assert first is not None
        taken = []
        while not taken:
            assert time.monotonic() < deadline, "nothing more came in hand"
            taken = consumer.receive_ready(1)
        assert len(taken) == 1
        for delivery in (first, *taken):
            delivery.ack()
    rest = receive_all(provider, queue, PREFETCH - 2)
    assert sorted(d.payload for d in rest) == [f"m{i}".encode() for i in range(2, PREFETCH)]


def test_deliveries_handed_over_unacked_come_back_after_close(provider, queue):
    with provider.producer() as producer:
        for i in range(3):
            producer.send(queue, f"m{i}".encode())
    deadline = time.monotonic() + WAIT
    with provider.receiver(queue, prefetch=3) as consumer:
        got = [consumer.receive(WAIT)]
        while len(got) < 3:
            assert time.monotonic() < deadline, f"only {len(got)} of 3 in hand"
            got.extend(consumer.receive_ready(3 - len(got)))
        got[0].ack()  # the other two are dropped unacked
    back = receive_all(provider, queue, 2)
    assert sorted(d.payload for d in back) == [b"m1", b"m2"]


def test_ack_many_acknowledges_every_delivery_given(provider, queue):
    with provider.producer() as producer:
        for i in range(4):
            producer.send(queue, f"m{i}".encode())
    deadline = time.monotonic() + WAIT
    with provider.receiver(queue, prefetch=4) as consumer:
        got = [consumer.receive(WAIT)]
        while len(got) < 4:
            assert time.monotonic() < deadline, f"only {len(got)} of 4 in hand"
            got.extend(consumer.receive_ready(4 - len(got)))
        consumer.ack_many(got[:3])  # the last one is dropped unacked
    (back,) = receive_all(provider, queue, 1)
    assert back.payload == b"m3"
    assert_empty(provider, queue)
