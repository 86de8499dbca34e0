"""Slots, rate clocks and parked messages in the database (one process)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import checks
from django.test import override_settings
from django.utils import timezone

from kew.providers.base import DeliveryOptions
from kew.providers.memory import MemoryProvider
from kew_django.limits import Limit, parked, store
from kew_django.limits.declared import declared_limit
from kew_django.limits.store import Refusal, Refused, Slot
from kew_django.models import LimitSetting, LimitSlot, ParkedMessage

pytestmark = pytest.mark.django_db(transaction=True)


def take(limit: Limit, key: str | None = None) -> Slot | Refused | None:
    store.ensure(limit.name or "", "default")
    return store.acquire(limit, key, holder="test", lease=30, using="default")


def test_a_concurrency_limit_refuses_the_start_past_its_slots_until_one_is_given_back():
    limit = Limit(concurrency=2, name="q")
    first, second = take(limit), take(limit)
    assert isinstance(first, Slot) and isinstance(second, Slot)
    assert take(limit) == Refused(Refusal.CONCURRENCY)
    assert first.token is not None
    store.release(first.token, "default")
    assert isinstance(take(limit), Slot)


def test_a_per_key_limit_refuses_only_that_key():
    limit = Limit(concurrency=3, per_key=1, name="q")
    assert isinstance(take(limit, "a"), Slot)
    assert take(limit, "a") == Refused(Refusal.KEY)
    assert isinstance(take(limit, "b"), Slot)


def test_a_slot_whose_lease_ended_is_free_again():
    limit = Limit(concurrency=1, name="q")
    assert isinstance(take(limit), Slot)
    LimitSlot.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert isinstance(take(limit), Slot)
    assert store.live_slots("q", "default").count() == 1  # the ended one is ignored


def test_a_renewed_slot_outlives_its_first_lease():
    store.ensure("q", "default")
    slot = store.acquire(Limit(concurrency=1, name="q"), None, holder="t", lease=0, using="default")
    assert isinstance(slot, Slot) and slot.token is not None
    assert store.renew(slot.token, 30, "default")
    assert take(Limit(concurrency=1, name="q")) == Refused(Refusal.CONCURRENCY)


def test_a_rate_limit_spaces_starts_by_its_interval():
    limit = Limit(rate=10, name="q")
    began = time.monotonic()
    assert take(limit) == Slot(None)
    assert take(limit) == Slot(None)  # one early, within the tolerance
    refused = take(limit)
    took = time.monotonic() - began
    assert isinstance(refused, Refused) and refused.reason is Refusal.RATE
    # the clock is two intervals ahead of the first start; one is tolerated
    assert 0.1 - took - 0.01 <= refused.wait <= 0.1


def test_a_value_set_in_the_database_overrides_the_declared_one_without_a_restart():
    limit = Limit(concurrency=2, name="q")
    assert isinstance(take(limit), Slot)
    LimitSetting.objects.filter(name="q").update(concurrency=1)
    assert take(limit) == Refused(Refusal.CONCURRENCY)


@override_settings(KEW={"LIMITS": {"imports": {"CONCURRENCY": 4, "PER_KEY": 1}, "q": {"RATE": 5}}})
def test_settings_name_limits_and_override_a_queues_declared_values():
    assert declared_limit("x", "imports") == Limit(concurrency=4, per_key=1, name="imports")
    assert declared_limit("q", 2) == Limit(concurrency=2, rate=5, name="q")
    assert declared_limit("other", None) is None


@override_settings(KEW={"LIMITS": {"imports": {"CONCURRENCY": 0, "RATE": "fast", "SIZE": 1}}})
def test_a_bad_limit_in_settings_is_a_system_check_error():
    errors = [e for e in checks.run_checks(tags=["kew"]) if e.id == "kew.E020"]
    text = " ".join(e.msg for e in errors)
    assert "concurrency must be" in text and "rate must be" in text and "SIZE" in text
    assert all(e.hint for e in errors)


def park(queue: str, key: str, n: int, message_id: str | None = None) -> None:
    provider = MemoryProvider()
    options = DeliveryOptions(message_id=message_id)
    provider.producer().send(queue, f'{{"n": {n}}}'.encode(), options)
    delivery = provider.receiver(queue).receive(1)
    assert delivery is not None
    parked.park(delivery, queue=queue, limit=queue, key=key, using="default")


def test_parked_messages_are_taken_round_robin_by_key_each_with_its_slot():
    limit = Limit(concurrency=3, per_key=1, name="q")
    store.ensure("q", "default")
    for n in range(3):
        park("q", "a", n)
    park("q", "b", 9)
    parking = parked.Parking(limit, queue="q", holder="t", lease=30, using="default")
    first = parking.take()
    second = parking.take()
    assert first is not None and second is not None
    assert (first.payload, second.payload) == (b'{"n": 0}', b'{"n": 9}')  # a, then b
    assert parking.take() is None  # each key holds its one slot
    first.ack()
    assert first.slot is not None
    store.release(first.slot, "default")
    third = parking.take()
    assert third is not None and third.payload == b'{"n": 1}'
    assert ParkedMessage.objects.count() == 3  # until acked


def test_a_message_parked_again_after_a_lost_ack_is_one_row():
    park("q", "a", 1, message_id="m1")
    park("q", "a", 1, message_id="m1")  # the broker delivered it again
    assert ParkedMessage.objects.count() == 1
