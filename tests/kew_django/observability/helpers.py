"""Run a relay and workers on threads for a test, and read a local HTTP endpoint."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

from kew_django.relay.publisher import Relay
from kew_django.workers.worker import Worker


@contextlib.contextmanager
def running(*, relay: Relay | None = None, workers: list[Worker] = ()) -> Iterator[None]:
    """Run ``relay`` and ``workers`` on threads until the block ends."""
    stop = threading.Event()
    loops = [relay.run] if relay is not None else []
    loops += [worker.run for worker in workers]
    threads = [
        threading.Thread(target=loop, args=(stop,), name=f"test-loop-{n}", daemon=True)
        for n, loop in enumerate(loops)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Wait until ``condition()`` is true, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.1)


def get(port: int, path: str) -> tuple[int, dict | str]:
    """GET ``http://127.0.0.1:port/path``; return the status and the JSON (or text) body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
            status, body = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body
