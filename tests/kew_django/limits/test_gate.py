"""The worker's gate: a message that may not start waits (no attempt spent) or is parked."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
from django.test import override_settings

from kew.providers.memory import MemoryProvider
from kew_django.limits import Limit, store
from kew_django.limits.gate import Gate, gate_for
from kew_django.limits.store import Slot
from kew_django.models import DeadLetter, LimitSlot, ParkedMessage
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "limits.gate"


def send(provider: MemoryProvider, *items: dict) -> None:
    with provider.producer() as producer:
        for data in items:
            producer.send(QUEUE, json.dumps(data).encode())


def test_a_message_waits_for_a_slot_without_spending_an_attempt():
    provider, calls = MemoryProvider(), []
    worker = Worker(ConsumerSpec(QUEUE, calls.append, limit=1, retry="1s"), provider)
    held = store.acquire(
        Limit(concurrency=1, name=QUEUE), None, holder="other", lease=30, using="default"
    )
    assert isinstance(held, Slot) and held.token is not None  # another process holds the slot
    send(provider, {"n": 1})
    delivery = provider.receiver(QUEUE).receive(1)
    assert delivery is not None
    outcomes: list[DeliveryOutcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(worker.handle(delivery)))
    thread.start()
    time.sleep(0.5)
    assert calls == [] and outcomes == []  # waiting, the delivery in hand
    store.release(held.token, "default")
    thread.join(5)
    assert calls == [{"n": 1}] and outcomes == [DeliveryOutcome.HANDLED]
    assert delivery.properties.get("kew-delivery-count") in (None, "1")  # no attempt spent
    assert not DeadLetter.objects.exists() and not LimitSlot.objects.exists()


def test_a_waiting_worker_told_to_stop_gives_the_delivery_back():
    provider = MemoryProvider()
    worker = Worker(ConsumerSpec(QUEUE, lambda data: None, limit=1), provider)
    store.acquire(Limit(concurrency=1, name=QUEUE), None, holder="other", lease=30, using="default")
    send(provider, {"n": 1})
    delivery = provider.receiver(QUEUE).receive(1)
    assert delivery is not None
    threading.Timer(0.3, worker.gate.stop.set).start()
    assert worker.handle(delivery) is DeliveryOutcome.RELEASED
    assert not DeadLetter.objects.exists()


def test_a_message_whose_key_is_full_is_parked_and_acked_then_taken_when_free():
    provider, calls = MemoryProvider(), []
    spec = ConsumerSpec(QUEUE, calls.append, limit=Limit(per_key=1), key=lambda data: data["user"])
    worker = Worker(spec, provider)
    held = store.acquire(
        Limit(per_key=1, name=QUEUE), "ann", holder="other", lease=30, using="default"
    )
    assert isinstance(held, Slot) and held.token is not None
    send(provider, {"user": "ann"}, {"user": "bob"})
    assert worker.poll(1) and worker.poll(1)
    assert calls == [{"user": "bob"}]  # ann's stepped aside: bob's was not held up
    assert ParkedMessage.objects.filter(key="ann").count() == 1
    assert provider.receiver(QUEUE).receive(0.1) is None  # acked: off the broker's queue
    assert worker.stats.counts[DeliveryOutcome.PARKED] == 1
    store.release(held.token, "default")
    assert worker.poll(1)
    assert calls == [{"user": "bob"}, {"user": "ann"}]
    assert not ParkedMessage.objects.exists() and not LimitSlot.objects.exists()


@override_settings(KEW={"LIMITS": {"tasks.default": {"CONCURRENCY": 3}}})
def test_a_task_queue_is_limited_by_the_settings_entry_named_after_it():
    gate = gate_for("tasks.default", None, None, codec=None, using="default", observer=None)  # type: ignore[arg-type]
    assert isinstance(gate, Gate) and gate.limit == Limit(concurrency=3, name="tasks.default")
    assert gate_for("other", None, None, codec=None, using="default", observer=None) is None  # type: ignore[arg-type]


def test_a_limited_consumer_with_a_prefetch_starts_each_message_in_a_slot():
    provider, held = MemoryProvider(), []
    spec = ConsumerSpec(QUEUE, lambda data: held.append(LimitSlot.objects.count()), limit=1)
    worker = Worker(replace(spec, prefetch=20), provider)  # group commit would batch these
    send(provider, *[{"n": n} for n in range(5)])
    deadline = time.monotonic() + 10
    try:
        while len(held) < 5:
            assert time.monotonic() < deadline, f"handled {len(held)} of 5"
            worker.poll(0.2)
    finally:
        worker.close()
    assert held == [1] * 5  # each handler ran holding the slot: none went round the gate
