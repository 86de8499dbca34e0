"""Topics end to end: publish through the outbox, durable subscriptions consumed by workers."""

from __future__ import annotations

import pytest
from django.db import transaction

from kew_django import Topic, subscriber
from kew_django.models import DeadLetter, OutboxMessage
from kew_django.relay.publisher import Relay
from kew_django.topics import SubscriberSpec, declare_subscriptions, subscriptions
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty
from tests.kew_django.topics.conftest import Imported, collector, pump


def test_three_subscribers_one_failing_the_others_get_everything_once(
    provider, topic_name, consumers
):
    topic = Topic(topic_name, payload=Imported)
    audit, mail = [], []
    subscriber(topic, name="audit")(collector(audit))
    subscriber(topic, name="mail", idempotent=True)(collector(mail))

    @subscriber(topic, name="broken", retry="0.2s")
    def broken(event: Imported) -> None:
        raise ValueError(f"cannot handle {event.n}")

    Topic(topic_name, payload=Imported).publish_many([Imported(n) for n in range(10)])
    assert Relay(provider).relay_all() == 10  # declares the subscriptions, then publishes
    specs = {spec.subscription: spec for spec in subscriptions(consumers)}
    assert sorted(specs) == ["audit", "broken", "mail"]

    pump(Worker(specs["audit"], provider), provider, lambda: len(audit) == 10)
    pump(Worker(specs["mail"], provider), provider, lambda: len(mail) == 10)
    failing = Worker(specs["broken"], provider)
    outcomes = pump(failing, provider, lambda: DeadLetter.objects.count() == 10)

    assert sorted(e.n for e in audit) == sorted(e.n for e in mail) == list(range(10))
    assert outcomes.count(DeliveryOutcome.DEAD) == 10
    assert outcomes.count(DeliveryOutcome.RETRIED) == 10
    letters = DeadLetter.objects.all()
    assert {letter.queue for letter in letters} == {topic.subscription("broken")}
    for spec in specs.values():
        assert_empty(provider, spec.queue)


def test_a_stopped_subscriber_gets_all_that_was_published_meanwhile(
    provider, topic_name, consumers
):
    topic = Topic(topic_name, payload=Imported)
    got: list[Imported] = []
    spec = subscriber(topic, name="late")(collector(got)).kew_consumer
    assert isinstance(spec, SubscriberSpec)
    topic.publish(Imported(-1))
    Relay(provider).relay_all()
    pump(Worker(spec, provider), provider, lambda: len(got) == 1)  # it ran, then stopped

    for n in range(100):
        topic.publish(Imported(n))
    assert Relay(provider).relay_all() == 100

    pump(Worker(spec, provider), provider, lambda: len(got) == 101)
    assert [e.n for e in got[1:]] == list(range(100))
    assert_empty(provider, spec.queue)


def test_a_subscription_exists_before_its_worker_first_runs(provider, topic_name, consumers):
    topic = Topic(topic_name, payload=Imported)
    got: list[Imported] = []
    spec = subscriber(topic, name="never-ran")(collector(got)).kew_consumer
    assert declare_subscriptions(provider, consumers) == [spec.queue]
    topic.publish_many([Imported(n) for n in range(5)])
    Relay(provider).relay_all()
    pump(Worker(spec, provider), provider, lambda: len(got) == 5)
    assert sorted(e.n for e in got) == list(range(5))


def test_a_publish_in_a_rolled_back_transaction_reaches_no_subscriber(
    provider, topic_name, consumers
):
    topic = Topic(topic_name, payload=Imported)
    first, second = [], []
    one = subscriber(topic, name="one")(collector(first)).kew_consumer
    two = subscriber(topic, name="two")(collector(second)).kew_consumer
    declare_subscriptions(provider, consumers)

    with pytest.raises(RuntimeError), transaction.atomic():
        topic.publish(Imported(1))
        raise RuntimeError("the import failed")
    assert not OutboxMessage.objects.exists()
    assert Relay(provider).relay_all() == 0
    assert_empty(provider, one.queue)
    assert_empty(provider, two.queue)

    with transaction.atomic():
        topic.publish(Imported(2))
    Relay(provider).relay_all()
    pump(Worker(one, provider), provider, lambda: first)
    pump(Worker(two, provider), provider, lambda: second)
    assert first == second == [Imported(2)]


def test_a_topic_row_is_marked_and_sent_without_the_mark(provider, topic_name, consumers):
    topic = Topic(topic_name, payload=Imported)
    spec = subscriber(topic, name="marks")(collector([])).kew_consumer
    (row,) = topic.publish_many([Imported(3)], properties={"source": "test"})
    assert row.queue == topic_name and row.headers["kew-topic"] == topic_name
    Relay(provider).relay_all()
    with provider.receiver(spec.queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None
        assert delivery.properties["source"] == "test"
        assert "kew-topic" not in delivery.properties
        delivery.ack()
