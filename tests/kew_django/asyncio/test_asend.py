"""Channel.asend: the row joins the transaction of the thread the async code came from."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.db import transaction

from kew_django import Channel, Topic
from kew_django.checks import check_consumers
from kew_django.errors import CannotJoinTransaction
from kew_django.models import OutboxMessage
from kew_django.workers.registry import ConsumerSpec
from tests.kew_django.conftest import Job, written

pytestmark = pytest.mark.django_db(transaction=True)


class Failed(Exception):
    pass


async def write_both(channel: Channel[Job], n: int) -> None:
    await Group.objects.acreate(name=f"group-{n}")
    await channel.asend(Job(n))


def test_asend_commits_with_the_callers_transaction(queue):
    channel = Channel(queue, payload=Job)
    with transaction.atomic():
        async_to_sync(write_both)(channel, 1)
        assert len(written(queue)) == 1  # same connection
    assert Group.objects.filter(name="group-1").exists()
    assert [row.payload for row in written(queue)] == [channel.codec.encode(Job(1))]


def test_asend_rolls_back_with_the_callers_transaction(queue):
    channel = Channel(queue, payload=Job)
    with pytest.raises(Failed), transaction.atomic():
        async_to_sync(write_both)(channel, 1)
        raise Failed
    assert not Group.objects.exists()
    assert not written(queue)


def test_asend_many_writes_the_rows_in_order(queue):
    channel = Channel(queue, payload=Job)

    async def send_three():
        return await channel.asend_many(Job(n) for n in range(3))

    with transaction.atomic():
        rows = async_to_sync(send_three)()
    assert len(rows) == 3
    assert [row.payload for row in written(queue)] == [
        channel.codec.encode(Job(n)) for n in range(3)
    ]


def test_asend_outside_a_transaction_commits_at_once(queue):
    channel = Channel(queue, payload=Job)
    async_to_sync(channel.asend)(Job(1), properties={"tenant": "a"})
    (row,) = written(queue)
    assert row.headers["tenant"] == "a"


def test_a_loop_started_inside_a_transaction_cannot_join_it(queue):
    channel = Channel(queue, payload=Job)
    with transaction.atomic():
        with pytest.raises(CannotJoinTransaction, match="async_to_sync"):
            asyncio.run(channel.asend(Job(1)))
        Group.objects.create(name="still usable")
    assert not written(queue)
    assert Group.objects.filter(name="still usable").exists()


def test_a_loop_of_its_own_has_no_transaction_to_join(queue):
    channel = Channel(queue, payload=Job)
    with pytest.raises(CannotJoinTransaction, match="event loop of its own"):
        asyncio.run(channel.asend_many([Job(1)]))
    assert not written(queue)


def test_an_async_handler_with_atomic_false_is_refused_by_a_check(consumers, queue):
    async def long_work(data, work):
        pass

    consumers.register(ConsumerSpec(queue, long_work, atomic=False))
    consumers.register(ConsumerSpec(f"{queue}.sync", lambda data, work: None, atomic=False))
    errors = check_consumers()
    assert [error.id for error in errors] == ["kew.E014"]
    assert "async def" in errors[0].msg and "atomic=False" in errors[0].msg
    assert "plain def" in errors[0].hint


def test_apublish_commits_and_rolls_back_with_the_callers_transaction(queue):
    topic = Topic(f"{queue}.events", payload=Job)

    async def publish(n: int) -> None:
        await Group.objects.acreate(name=f"group-{n}")
        await topic.apublish(Job(n))
        await topic.apublish_many([Job(n + 100)])

    with transaction.atomic():
        async_to_sync(publish)(1)
    with pytest.raises(Failed), transaction.atomic():
        async_to_sync(publish)(2)
        raise Failed
    rows = OutboxMessage.objects.filter(queue=topic.name).order_by("created_at")
    assert [bytes(row.payload) for row in rows] == [
        topic.codec.encode(Job(1)),
        topic.codec.encode(Job(101)),
    ]
    assert list(Group.objects.values_list("name", flat=True)) == ["group-1"]
