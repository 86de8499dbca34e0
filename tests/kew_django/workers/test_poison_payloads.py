"""Payloads the parser cannot read become undecodable dead letters, not endless redeliveries."""

from __future__ import annotations

import pytest

from kew.providers.base import DeliveryOptions
from kew_django.models import DeadLetter
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.kew_django.conftest import Job

POISON = {
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"n": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_an_unparseable_payload_is_dead_lettered_as_undecodable(database_provider, queue, name):
    calls: list[Job] = []
    worker = Worker(ConsumerSpec(queue, calls.append, payload=Job), database_provider)
    with database_provider.producer() as producer:
        producer.send(queue, POISON[name], DeliveryOptions(message_id=f"poison-{name}"))
    with database_provider.receiver(queue) as receiver:
        delivery = receiver.receive(5.0)
        assert delivery is not None
        assert worker.handle(delivery) == DeliveryOutcome.DEAD
        assert receiver.receive(0.3) is None, "the poison payload came back"
    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.reason) == (f"poison-{name}", DeadLetter.Reason.UNDECODABLE)
    assert bytes(letter.payload) == POISON[name]
    assert calls == []
