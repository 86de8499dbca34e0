"""kew_consume --processes: the supervisor of N consumer processes."""

import sys
import threading
import time

import pytest

from kew_django.workers.processes import Supervisor, consume_command

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stop_ends_every_child_and_exits_zero():
    supervisor = Supervisor(SLEEP, 3)
    threading.Timer(1.0, supervisor.stop).start()
    began = time.monotonic()
    assert supervisor.run(poll=0.05) == 0
    assert time.monotonic() - began < 30
    assert len(supervisor.children) == 3
    assert all(child.poll() is not None for child in supervisor.children)


def test_a_child_that_dies_unexpectedly_stops_the_others_and_exits_non_zero(tmp_path):
    flag = tmp_path / "first"
    script = (
        "import os, sys, time\n"
        f"try:\n    fd = os.open({str(flag)!r}, os.O_CREAT | os.O_EXCL)\n"
        "except FileExistsError:\n    time.sleep(60)\nelse:\n    sys.exit(3)\n"
    )
    supervisor = Supervisor([sys.executable, "-c", script], 2)
    assert supervisor.run(poll=0.05) == 1
    assert sorted(child.returncode for child in supervisor.children)[-1] == 3
    assert all(child.poll() is not None for child in supervisor.children)


def test_at_least_one_process():
    with pytest.raises(ValueError, match="at least 1"):
        Supervisor(SLEEP, 0)


def test_children_run_kew_consume_with_the_same_options():
    command = consume_command(["thumbnails"], concurrency=2, provider="default")
    assert command[0] == sys.executable
    assert command[2:] == [
        "kew_consume",
        "thumbnails",
        "--concurrency",
        "2",
        "--provider",
        "default",
    ]
