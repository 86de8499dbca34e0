"""The topics page: each topic of the code with its subscriptions' depth and dead letters."""

from __future__ import annotations

import pytest
from django.urls import reverse

from kew_django import Topic, subscriber
from kew_django.models import DeadLetter
from kew_django.providers import get_provider
from kew_django.relay.publisher import Relay

pytestmark = pytest.mark.django_db(transaction=True)
TOPICS = reverse("admin:kew_django_topicsubscription_changelist")


def ignore(event: dict) -> None:
    """A subscriber that does nothing."""


@pytest.fixture
def events(consumers, settings, providers):
    """Topic ``events`` with subscriptions ``audit`` and ``mail`` on the database provider."""
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    topic = Topic("events")
    subscriber(topic, name="audit")(ignore)
    subscriber(topic, name="mail")(ignore)
    return topic


def test_topics_are_listed_with_depth_and_dead_letters(admin_client, events):
    events.publish_many([{"n": 1}, {"n": 2}])
    Relay(get_provider()).relay_all()
    events.publish({"n": 3})  # not relayed yet
    DeadLetter.objects.create(queue=events.subscription("mail"), payload=b"{}", reason="exhausted")
    response = admin_client.get(TOPICS)
    assert response.status_code == 200
    (topic,) = response.context["topics"]
    assert (topic.name, topic.pending) == ("events", 1)
    rows = {(s.name, s.queue, s.depth, s.dead) for s in topic.subscriptions}
    assert rows == {("audit", "events::audit", 2, 0), ("mail", "events::mail", 2, 1)}
    assert b'data-queue="events::mail"' in response.content


def test_the_page_needs_view_permission(operator, events):
    assert operator().get(TOPICS).status_code == 403
    assert operator("view_topicsubscription").get(TOPICS).status_code == 200
