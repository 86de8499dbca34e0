"""The topic contract: every provider that declares ``Capability.TOPICS`` passes these tests."""

from __future__ import annotations

import uuid

import pytest

from kew.errors import ConfigurationError, UnsupportedCapability
from kew.providers.base import Capability, DeliveryOptions, Outgoing, subscription_queue
from kew.providers.memory import MemoryProvider
from tests.contract.helpers import assert_empty, receive_all


@pytest.fixture
def topic(provider) -> str:
    """A topic name no other test uses; every provider of this suite has topics.

    A provider without them is covered by the refusal test below, never skipped.
    """
    assert Capability.TOPICS in provider.capabilities, f"{type(provider).__name__}: no topics"
    return f"contract-topic.{uuid.uuid4().hex[:12]}"


def test_each_subscription_gets_its_own_copy_of_every_message(provider, topic):
    queues = [provider.subscribe(topic, name) for name in ("audit", "mail", "thumbs")]
    with provider.producer() as producer:
        for i in range(5):
            producer.publish(topic, f"m{i}".encode(), DeliveryOptions(message_id=f"id-{i}"))
    for queue in queues:
        got = receive_all(provider, queue, 5)
        assert [d.payload for d in got] == [f"m{i}".encode() for i in range(5)]
        assert [d.message_id for d in got] == [f"id-{i}" for i in range(5)]
        assert_empty(provider, queue)


def test_a_subscription_keeps_what_was_published_before_it_was_consumed(provider, topic):
    queue = provider.subscribe(topic, "late")
    assert queue == subscription_queue(topic, "late")
    with provider.producer() as producer:
        producer.send_many([Outgoing(topic, str(i).encode(), topic=True) for i in range(20)])
    got = receive_all(provider, queue, 20)
    assert sorted(int(d.payload) for d in got) == list(range(20))


def test_subscribing_twice_keeps_one_subscription(provider, topic):
    first = provider.subscribe(topic, "once")
    assert provider.subscribe(topic, "once") == first
    with provider.producer() as producer:
        producer.publish(topic, b"one")
    (delivery,) = receive_all(provider, first, 1)
    assert delivery.payload == b"one"
    assert_empty(provider, first)


def test_a_subscription_queue_takes_direct_sends_for_retries(provider, topic):
    # The worker retries a subscriber's message by sending it to the subscription's queue.
    queue = provider.subscribe(topic, "retried")
    other = provider.subscribe(topic, "untouched")
    with provider.producer() as producer:
        producer.send(queue, b"again", DeliveryOptions(properties={"n": "2"}))
    (delivery,) = receive_all(provider, queue, 1)
    assert (delivery.payload, delivery.properties["n"]) == (b"again", "2")
    assert_empty(provider, other)


def test_topics_and_queues_mix_in_one_batch(provider, topic, queue):
    subscription = provider.subscribe(topic, "mixed")
    with provider.producer() as producer:
        producer.send_many([Outgoing(queue, b"queued"), Outgoing(topic, b"published", topic=True)])
    assert [d.payload for d in receive_all(provider, queue, 1)] == [b"queued"]
    assert [d.payload for d in receive_all(provider, subscription, 1)] == [b"published"]


def test_bad_subscription_names_are_refused(provider, topic):
    with pytest.raises(ConfigurationError):
        provider.subscribe(topic, "")
    with pytest.raises(ConfigurationError):
        provider.subscribe(topic, "a::b")


def test_a_provider_without_topics_refuses_a_publish():
    provider = MemoryProvider(capabilities=frozenset(Capability) - {Capability.TOPICS})
    with pytest.raises(UnsupportedCapability):
        provider.validate(Outgoing("events", b"x", topic=True))
    with pytest.raises(UnsupportedCapability), provider.producer() as producer:
        producer.publish("events", b"x")
