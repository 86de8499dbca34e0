"""The relay's declarations: a topic's subscriptions, once, and again after a rollback."""

from __future__ import annotations

import pytest
from django.db import transaction

from kew_django import Topic, subscriber
from kew_django.models import TopicSubscription
from kew_django.topics import Declarations
from tests.kew_django.topics.conftest import Imported, collector


class Counting:
    """Count ``subscribe`` calls on the way to the real provider."""

    def __init__(self, provider):
        self.provider, self.capabilities, self.calls = provider, provider.capabilities, []

    def subscribe(self, topic: str, name: str) -> str:
        self.calls.append((topic, name))
        return self.provider.subscribe(topic, name)


@pytest.fixture
def topic(consumers, topic_name) -> Topic:
    topic = Topic(topic_name, payload=Imported)
    subscriber(topic, name="a")(collector([]))
    subscriber(topic, name="b")(collector([]))
    subscriber(Topic("other"), name="c")(collector([]))
    return topic


def test_a_topic_s_subscriptions_are_declared_once(database_provider, topic):
    counting = Counting(database_provider)
    declarations = Declarations(counting, "default")  # type: ignore[arg-type]
    declarations.ensure(topic.name)
    declarations.ensure(topic.name)
    assert counting.calls == [(topic.name, "a"), (topic.name, "b")]
    queues = TopicSubscription.objects.values_list("queue", flat=True)
    assert sorted(queues) == [topic.subscription("a"), topic.subscription("b")]


def test_a_declaration_rolled_back_is_made_again(database_provider, topic):
    counting = Counting(database_provider)
    declarations = Declarations(counting, "default")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), transaction.atomic():
        declarations.ensure(topic.name)
        raise RuntimeError("the relay's claim rolled back")
    assert not TopicSubscription.objects.exists()
    declarations.ensure(topic.name)
    assert len(counting.calls) == 4
    assert TopicSubscription.objects.count() == 2
