"""Fixtures of the task backend tests: a task queue of its own, and a way to run its tasks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from kew_django.relay.publisher import Relay
from kew_django.tasks.worker import task_queue_spec
from kew_django.workers.worker import Worker


@pytest.fixture
def task_queue(settings) -> str:
    """A task queue no other test uses, accepted by the default task backend."""
    name = f"test.tasks.{uuid.uuid4().hex[:12]}"
    settings.TASKS = {
        "default": {
            "BACKEND": "kew_django.tasks.KewTaskBackend",
            "QUEUES": ["default", name],
            "OPTIONS": {"RETRY": "50ms"},
        }
    }
    return name


@pytest.fixture
def run_tasks(provider, task_queue) -> Callable[..., None]:
    """Relay and run the tasks of ``task_queue`` until ``until()`` holds."""
    worker = Worker(task_queue_spec(task_queue), provider)

    def run(until: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with provider.receiver(task_queue) as receiver:
            while not until():
                assert time.monotonic() < deadline, "gave up waiting for the tasks"
                Relay(provider).relay_all()
                delivery = receiver.receive(0.1)
                if delivery is not None:
                    worker.handle(delivery)

    return run
