"""The topics page: each topic of the code, its subscriptions, their depth and dead letters.

Registered as the changelist of ``TopicSubscription``. Topics and
subscriptions come from the code (``@subscriber``), so the page is the
same on every provider; the depth (messages waiting) is the provider's
``pending`` where it has one (database, memory), else shown as unknown:
a broker's own console shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.contrib import admin
from django.db.models import Count
from django.template.response import TemplateResponse

from kew.errors import KewError
from kew_django.models import DeadLetter, OutboxMessage, TopicSubscription
from kew_django.outbox.validation import TOPIC
from kew_django.providers import get_provider
from kew_django.topics import subscriptions

log = logging.getLogger(__name__)


@dataclass
class SubscriptionRow:
    """One subscription: its queue, handler, depth and dead letters."""

    name: str
    queue: str
    handler: str
    depth: int | None = None  # None: the provider cannot tell
    dead: int = 0


@dataclass
class TopicRow:
    """One topic and its subscriptions."""

    name: str
    pending: int = 0  # outbox rows not yet published
    subscriptions: list[SubscriptionRow] = field(default_factory=list)


def summarize_topics(provider: str = "default") -> list[TopicRow]:
    """Return the code's topics with their subscriptions' depth and dead letters."""
    topics: dict[str, TopicRow] = {}
    for spec in subscriptions():
        row = topics.setdefault(spec.topic, TopicRow(spec.topic))
        row.subscriptions.append(SubscriptionRow(spec.subscription, spec.queue, spec.name))
    queues = {sub.queue: sub for row in topics.values() for sub in row.subscriptions}
    dead = DeadLetter.objects.filter(state=DeadLetter.State.DEAD, queue__in=queues)
    for letters in dead.values("queue").annotate(n=Count("pk")).order_by():
        queues[letters["queue"]].dead = letters["n"]
    pending = OutboxMessage.objects.filter(
        status=OutboxMessage.Status.PENDING, queue__in=topics, headers__has_key=TOPIC
    )
    for rows in pending.values("queue").annotate(n=Count("pk")).order_by():
        topics[rows["queue"]].pending = rows["n"]
    depth = _depth_of(provider)
    for sub in queues.values():
        sub.depth = depth(sub.queue)
    return sorted(topics.values(), key=lambda row: row.name)


def _depth_of(alias: str):
    try:
        pending = getattr(get_provider(alias), "pending", None)
    except KewError:
        pending = None
    if pending is None:
        return lambda queue: None

    def depth(queue: str) -> int | None:
        try:
            return pending(queue)
        except Exception:  # noqa: BLE001 - the page shows the rest
            log.warning("depth of %s unknown", queue, exc_info=True)
            return None

    return depth


@admin.register(TopicSubscription)
class TopicSubscriptionAdmin(admin.ModelAdmin):
    """Topics and subscriptions, read-only (declared by the code, not edited here)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        """Show every topic of the code with its subscriptions."""
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)  # raises PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Topics",
            "topics": summarize_topics(),
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
        }
        return TemplateResponse(request, "admin/kew_django/topics.html", context)
