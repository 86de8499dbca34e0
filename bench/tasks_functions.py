"""The benchmark's task, once per backend (a task is found again by its function's path)."""

from kew_django.tasks.compat import task


@task(backend="default", queue_name="bench")
def kew_touch(n: int) -> int:
    return n


@task(backend="db", queue_name="bench")
def db_touch(n: int) -> int:
    return n
