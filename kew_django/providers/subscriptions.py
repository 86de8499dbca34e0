"""Topics on the database provider: a subscription is a row; a publish, a queue row for each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from django.db import transaction

from kew.providers.base import Outgoing, subscription_queue


def _model():
    from kew_django.models import TopicSubscription  # this module loads before the models do

    return TopicSubscription


def subscribe(using: str, topic: str, name: str) -> str:
    """Record subscription ``name`` of ``topic`` on database ``using``; return its queue."""
    queue = subscription_queue(topic, name)
    with transaction.atomic(using=using):
        _model().objects.using(using).get_or_create(
            queue=queue, defaults={"topic": topic, "name": name}
        )
    return queue


def fan_out(using: str, batch: Sequence[Outgoing]) -> list[Outgoing]:
    """Return ``batch`` with each topic item replaced by one item per subscription queue.

    Order is kept: a topic item's copies take its place, subscriptions in
    name order. A topic without subscriptions contributes nothing.
    """
    topics = {item.queue for item in batch if item.topic}
    if not topics:
        return list(batch)
    queues: dict[str, list[str]] = {topic: [] for topic in topics}
    rows = _model().objects.using(using).filter(topic__in=topics).order_by("name")
    for topic, queue in rows.values_list("topic", "queue"):
        queues[topic].append(queue)
    expanded: list[Outgoing] = []
    for item in batch:
        if not item.topic:
            expanded.append(item)
            continue
        expanded.extend(replace(item, queue=queue, topic=False) for queue in queues[item.queue])
    return expanded
