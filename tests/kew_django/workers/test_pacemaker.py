"""One pacemaker thread beats each delivery a worker handles, when due, and never after detach."""

from __future__ import annotations

import contextlib
import threading
import time

from kew_django.workers.pacemaker import Pacemaker


class Beating:
    """A heartbeat stand-in: due every ``interval`` seconds; records the threads that beat it."""

    def __init__(self, interval: float, hold: float = 0.0):
        self.interval, self.hold = interval, hold
        self.last = time.monotonic()
        self.threads: list[str] = []
        self.beating = threading.Event()

    def due(self) -> float:
        return self.last + self.interval

    def beat(self) -> None:
        self.beating.set()
        self.threads.append(threading.current_thread().name)
        time.sleep(self.hold)
        self.last = time.monotonic()


def attach(pacemaker: Pacemaker, heartbeat: Beating) -> None:
    pacemaker.attach(heartbeat.beat, heartbeat.due)


def wait_for(condition, timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def test_one_thread_beats_successive_deliveries_when_due():
    with contextlib.closing(Pacemaker("kew-heartbeat-test")) as pacemaker:
        first, second = Beating(0.05), Beating(0.05)
        attach(pacemaker, first)
        time.sleep(0.3)
        pacemaker.detach(first.beat)
        beats = len(first.threads)
        attach(pacemaker, second)
        time.sleep(0.3)
        pacemaker.detach(second.beat)
        time.sleep(0.1)
        assert 2 <= beats <= 7 and len(first.threads) == beats  # none after detach
        assert len(second.threads) >= 2
        assert set(first.threads) == set(second.threads) == {"kew-heartbeat-test"}


def test_a_short_delivery_is_never_beaten_and_starts_no_thread():
    with contextlib.closing(Pacemaker("kew-heartbeat-short")) as pacemaker:
        before = threading.active_count()
        attach(pacemaker, Beating(5.0))
        running = threading.active_count()
        for _ in range(200):
            short = Beating(5.0)
            attach(pacemaker, short)
            pacemaker.detach(short.beat)
            assert short.threads == []
        assert running == before + 1 and threading.active_count() == running


def test_short_deliveries_do_not_wake_the_thread():
    # Each wake-up takes the GIL from the worker: a stream of short deliveries must not
    # cost one per attach or detach (it cost two a delivery before).
    with contextlib.closing(Pacemaker("kew-heartbeat-quiet")) as pacemaker:
        first = Beating(5.0)
        attach(pacemaker, first)
        assert wait_for(lambda: pacemaker.asleep_until() == first.due()), "never went to sleep"
        before, alarms = pacemaker.wakeups, pacemaker.alarms

        def woke_for_each_alarm() -> bool:  # a woken thread ran and counted, each time
            return pacemaker.wakeups - before >= pacemaker.alarms - alarms

        for _ in range(200):
            short = Beating(5.0)
            attach(pacemaker, short)
            pacemaker.detach(short.beat)
            assert wait_for(woke_for_each_alarm), "an early wake-up was never taken"
        assert pacemaker.wakeups - before <= 1


def test_an_attach_due_sooner_wakes_the_thread_in_time():
    with contextlib.closing(Pacemaker("kew-heartbeat-sooner")) as pacemaker:
        late = Beating(30.0)
        attach(pacemaker, late)
        assert wait_for(lambda: pacemaker.asleep_until() == late.due()), "never went to sleep"
        soon = Beating(0.05)
        attach(pacemaker, soon)
        assert soon.beating.wait(2), "the thread slept past a heartbeat due sooner"
        pacemaker.detach(soon.beat)


def test_detach_waits_for_a_beat_in_progress():
    with contextlib.closing(Pacemaker("kew-heartbeat-slow")) as pacemaker:
        slow = Beating(0.0, hold=0.3)
        attach(pacemaker, slow)
        assert slow.beating.wait(2)
        began = time.monotonic()
        pacemaker.detach(slow.beat)
        assert time.monotonic() - began >= 0.1  # it waited for the beat to end
        count = len(slow.threads)
        time.sleep(0.2)
        assert len(slow.threads) == count
