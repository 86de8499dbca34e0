"""The benchmark's task: the same function on each backend."""

from kew_django.tasks.compat import task


def touch(n: int) -> int:
    return n


kew_touch = task(backend="default", queue_name="bench")(touch)
db_touch = task(backend="db", queue_name="bench")(touch)
