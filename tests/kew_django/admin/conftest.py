"""Fixtures of the admin tests: operators with chosen permissions, rows, a test consumer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from kew_django.models import DeadLetter, OutboxMessage
from kew_django.workers.registry import ConsumerRegistry

QUEUE = "test.admin.orders"


@dataclass
class Order:
    """The payload type of the test queue."""

    order_id: int
    customer: str
    note: str | None = None


@pytest.fixture
def registry(consumers) -> ConsumerRegistry:
    """Give kew_django an empty consumer registry for the test."""
    return consumers


@pytest.fixture
def handled(registry) -> list[Order]:
    """Register a consumer of QUEUE that records the orders it gets."""
    received: list[Order] = []

    @registry.consumer(QUEUE, payload=Order)
    def take_order(order: Order) -> None:
        received.append(order)

    return received


@pytest.fixture
def admin_user(db, django_user_model):
    """A superuser with no password: hashing one costs about a second per test."""
    return django_user_model.objects.create_superuser("admin", "admin@example.com", None)


@pytest.fixture
def operator(db):
    """Return a function that logs in a staff user holding the given permission codenames."""

    def login(*codenames: str, staff: bool = True) -> Client:
        user = User.objects.create_user(f"operator{User.objects.count()}", is_staff=staff)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="kew_django", codename__in=codenames)
        )
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return login


@pytest.fixture
def dead_letter(db):
    """Return a function that makes a dead letter (defaults: DEAD, on QUEUE, a valid Order)."""

    def make(**fields) -> DeadLetter:
        now = timezone.now()
        values = {
            "queue": QUEUE,
            "message_id": f"m-{DeadLetter.objects.count() + 1}",
            "payload": b'{"order_id":1,"customer":"Ada"}',
            "headers": {"kew-delivery-count": "4", "trace": "t-1"},
            "reason": DeadLetter.Reason.EXHAUSTED,
            "error": "ValueError: stock service down",
            "traceback": "Traceback (most recent call last):\n  ...\nValueError: stock down",
            "attempts": 4,
            "first_failed_at": now,
            "last_failed_at": now,
        }
        values.update(fields)
        return DeadLetter.objects.create(**values)

    return make


@pytest.fixture
def outbox_message(db):
    """Return a function that makes an outbox row (default: FAILED on QUEUE)."""

    def make(**fields) -> OutboxMessage:
        values = {
            "queue": QUEUE,
            "payload": b'{"order_id":1,"customer":"Ada"}',
            "status": OutboxMessage.Status.FAILED,
            "attempts": 5,
            "last_error": "broker refused: too large",
        }
        values.update(fields)
        return OutboxMessage.objects.create(**values)

    return make
