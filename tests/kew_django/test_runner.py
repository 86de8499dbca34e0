"""What the runner starts beside its workers."""

from __future__ import annotations

from kew.providers.artemis import ArtemisProvider
from kew.providers.memory import MemoryProvider
from kew.providers.rabbitmq import RabbitMQProvider
from kew_django.runner import broker_dead_letters_for
from kew_django.workers.broker_dead_letters import BrokerDeadLetters
from kew_django.workers.registry import ConsumerSpec
from tests.kew_django.conftest import Job


def test_the_broker_dead_letters_are_drained_when_the_provider_declares_an_address(settings):
    settings.KEW = {"CONSUMERS": {"BROKER_DEAD_LETTERS": "DLQ"}}
    specs = [ConsumerSpec("test.runner", lambda job: None, payload=Job)]
    artemis = ArtemisProvider("artemis://localhost:61613")  # connects only when asked to
    drainer = broker_dead_letters_for(artemis, specs)
    assert isinstance(drainer, BrokerDeadLetters) and drainer.queues == ["test.runner"]
    assert broker_dead_letters_for(MemoryProvider(), specs) is None
    assert broker_dead_letters_for(artemis, []) is None


def test_on_rabbitmq_the_dead_letters_are_drained_only_with_a_delivery_limit(settings):
    settings.KEW = {"CONSUMERS": {"BROKER_DEAD_LETTERS": "DLQ"}}
    specs = [ConsumerSpec("test.runner", lambda job: None, payload=Job)]
    limited = RabbitMQProvider("amqp://localhost/?delivery_limit=10")  # nothing connects
    drainer = broker_dead_letters_for(limited, specs)
    assert isinstance(drainer, BrokerDeadLetters) and drainer.queues == ["test.runner"]
    assert broker_dead_letters_for(RabbitMQProvider("amqp://localhost/"), specs) is None
