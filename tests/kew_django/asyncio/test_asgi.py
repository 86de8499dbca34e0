"""An async view under uvicorn: the business row and the message commit or roll back together."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import uvicorn
from django.contrib.auth.models import Group
from django.core.asgi import get_asgi_application

from kew_django.relay.publisher import Relay
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty
from tests.kew_django.conftest import Job, written
from tests.kew_django.workers.test_worker import pump


@pytest.fixture
def server(settings) -> Iterator[str]:
    """Serve the test URLconf with uvicorn on a free port; yield its base URL."""
    settings.ROOT_URLCONF = "tests.kew_django.asyncio.urls"
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    config = uvicorn.Config(
        get_asgi_application(), host="127.0.0.1", port=0, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def post(url: str, **fields: object) -> int:
    """POST ``fields`` as a form; return the status code."""
    body = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_committed_view_delivers_its_message_once(provider, queue, server):
    delivered = []

    async def handler(job: Job):
        delivered.append(job)

    assert post(f"{server}/orders", queue=queue, n=1) == 201
    assert Group.objects.filter(name="order-1").exists()
    assert len(written(queue)) == 1
    Relay(provider).relay_all()
    worker = Worker(ConsumerSpec(queue, handler, payload=Job), provider)
    try:
        outcomes = pump(worker, provider, queue, lambda: delivered)
    finally:
        worker.loop.close()
    assert outcomes == [DeliveryOutcome.HANDLED]
    assert delivered == [Job(1)]
    assert_empty(provider, queue)


def test_a_view_that_raises_leaves_neither_row_nor_message(provider, queue, server):
    assert post(f"{server}/orders", queue=queue, n=2, fail=1) == 500
    assert not Group.objects.exists()
    assert not written(queue)
    Relay(provider).relay_all()
    assert_empty(provider, queue)


def test_asend_in_a_view_without_a_transaction_commits_at_once(database_provider, queue, server):
    assert post(f"{server}/send", queue=queue) == 201
    assert len(written(queue)) == 2
