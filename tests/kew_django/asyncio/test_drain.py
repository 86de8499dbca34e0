"""kew_django.testing.drain runs an async def consumer and closes its event loop."""

from __future__ import annotations

import threading

from django.contrib.auth.models import Group

from kew_django import Channel
from kew_django.testing import drain
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome
from tests.kew_django.conftest import Job


def test_drain_awaits_an_async_consumer_and_leaves_no_loop_thread(
    database_provider, consumers, queue
):
    async def handler(job: Job):
        await Group.objects.acreate(name=f"group-{job.n}")

    consumers.register(ConsumerSpec(queue, handler, payload=Job))
    Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    outcomes = drain(queue, provider=database_provider)
    assert outcomes == [DeliveryOutcome.HANDLED] * 2
    assert set(Group.objects.values_list("name", flat=True)) == {"group-1", "group-2"}
    assert f"kew-loop-{queue}" not in {thread.name for thread in threading.enumerate()}
