"""A one-second periodic job and its idempotent consumer, run by real ``kew_run`` processes.

Used by ``test_processes.py`` (settings: ``tests/kew_django/periodic/settings.py``).
"""

from datetime import datetime

from kew_django import Channel, consumer, periodic

JOB = "test.periodic.every-second"
ticks: Channel[dict] = Channel("test.periodic.ticks")


@periodic(every="1s", channel=ticks, name=JOB)
def tick(at: datetime) -> dict:
    """Return the data of one tick: its time."""
    return {"tick": at.isoformat()}


@consumer(ticks, idempotent=True, retry="0.2s 0.2s 0.2s")
def handle(data: dict) -> None:
    """Do nothing: the idempotency record is the effect the test counts."""
