"""What RabbitMQ dead-letters (past a queue's delivery limit) shows up as a DeadLetter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import kew
from kew.providers.base import DeliveryOptions
from kew_django.models import DeadLetter
from kew_django.workers.broker_dead_letters import BrokerDeadLetters
from kew_django.workers.deadletters import takes_dead_letter
from kew_django.workers.registry import ConsumerSpec

pytestmark = pytest.mark.rabbitmq


def die_before_the_ack(provider, queue: str, times: int) -> None:
    """Take the message of ``queue`` and close without an ack, ``times`` times."""
    for _ in range(times):
        with provider.receiver(queue) as receiver:
            assert receiver.receive(10) is not None


def test_what_rabbitmq_dead_letters_becomes_a_dead_letter_of_its_queue(
    transactional_db, rabbitmq_url
):
    queue, other = (f"test.dlr.{uuid.uuid4().hex[:10]}" for _ in range(2))
    rabbit = kew.connect(rabbitmq_url, delivery_limit=2)
    try:
        with rabbit.producer() as producer:
            producer.send(queue, b'{"n": 7}', DeliveryOptions(message_id="m-7"))
            producer.send(other, b'{"n": 8}', DeliveryOptions(message_id="m-8"))
        for name in (queue, other):
            die_before_the_ack(rabbit, name, 3)
        drainer = BrokerDeadLetters(rabbit, [queue])
        assert drainer.drain(10) == 1
        drainer.close()
        (letter,) = DeadLetter.objects.all()
        assert letter.queue == queue and letter.message_id == "m-7"
        assert bytes(letter.payload) == b'{"n": 7}' and letter.reason == "crashed"
        assert f"dead-letter queue '{queue}.dead'" in letter.error
        # the other queue's dead letter stays in its own dead-letter queue
        with rabbit.dead_letter_receiver([other]) as receiver:
            delivery = receiver.receive(10)
            assert delivery is not None and delivery.message_id == "m-8"
            delivery.ack()
    finally:
        rabbit.close()


def test_what_rabbitmq_dead_letters_reaches_its_consumers_on_exhausted_once(
    transactional_db, rabbitmq_url
):
    queue = f"test.dlr.{uuid.uuid4().hex[:10]}"
    given_up: list[tuple[Any, str, int]] = []

    @takes_dead_letter
    def exhausted(data, error, letter):
        given_up.append((data, str(error), letter.pk))

    spec = ConsumerSpec(queue, lambda data: None, on_exhausted=exhausted)
    rabbit = kew.connect(rabbitmq_url, delivery_limit=2)
    try:
        with rabbit.producer() as producer:
            producer.send(queue, b'{"n": 7}', DeliveryOptions(message_id="m-7"))
        die_before_the_ack(rabbit, queue, 3)
        drainer = BrokerDeadLetters(rabbit, [queue], consumers={queue: spec})
        assert drainer.drain(10) == 1
        drainer.close()
        (letter,) = DeadLetter.objects.all()
        assert given_up == [({"n": 7}, letter.error, letter.pk)]
        assert letter.reason == DeadLetter.Reason.CRASHED
    finally:
        rabbit.close()
