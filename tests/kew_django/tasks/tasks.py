"""Tasks for the task backend tests (module level, as Django requires)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.contrib.auth.models import Group

from kew_django.errors import PermanentError
from kew_django.tasks.compat import TaskContext
from kew_django.tasks.compat import task as decorate


@decorate
def add(a: int, b: int) -> int:
    """Return the sum; leave a group behind, to show the task's writes commit."""
    Group.objects.create(name=f"add {a} {b}")
    return a + b


@decorate(retry="50ms")
def fails_while(path: str) -> str:
    """Fail while ``path`` exists; its writes are rolled back each time."""
    Group.objects.create(name=f"attempt {time.monotonic_ns()}")
    if Path(path).exists():
        raise RuntimeError(f"{path} is still there")
    return "done"


@decorate
async def double(x: int) -> int:
    """An async task."""
    return 2 * x


@decorate(takes_context=True)
def attempt_number(context: TaskContext, x: int) -> list:
    """Return the attempt number the context gives, and the result id."""
    return [context.attempt, context.task_result.id, x]


@decorate
def returns_a_set() -> object:
    """Return something that is not JSON."""
    return {1, 2}


@decorate
def slow(marks: str) -> int:
    """Leave a mark; the first run takes long (the test kills it), later ones do not."""
    directory = Path(marks)
    runs = len(list(directory.glob("*.started")))
    (directory / f"{runs + 1}-{os.getpid()}.started").touch()
    if runs == 0:
        time.sleep(60)
    return runs + 1


@decorate(retry="")
def fails_at_once() -> None:
    """Fail; ``retry=""``: no second attempt, whatever the backend's schedule."""
    raise RuntimeError("no luck")


@decorate(retry="1h")
def refuses() -> None:
    """Raise PermanentError: given up on at once, whatever the schedule."""
    raise PermanentError("never")
