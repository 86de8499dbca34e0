"""Long work (``atomic=False``): outside the transaction, heartbeats, progress, cancel, crashes."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from kew.schedule import RepeatAction
from kew_django import Cancelled
from kew_django.models import DeadLetter, InProgress, ProcessedMessage
from kew_django.providers.database import DatabaseProvider
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty
from tests.kew_django.conftest import Job
from tests.kew_django.workers.test_worker import publish, pump


class Crash(BaseException):
    """Stands for the process dying at this point: nothing after it runs."""


def long_spec(queue, handler, **options) -> ConsumerSpec:
    return ConsumerSpec(queue, handler, payload=Job, atomic=False, **options)


@pytest.fixture
def fast_beats(settings):
    settings.KEW = {**getattr(settings, "KEW", {}), "CONSUMERS": {"HEARTBEAT": 0.2}}


def test_the_handler_runs_outside_any_transaction_and_its_progress_is_visible(
    provider, queue, fast_beats
):
    seen = {}

    def handler(job: Job, work) -> None:
        seen["atomic"] = connection.in_atomic_block
        for n in range(1, 6):
            work.progress(n, 5, f"step {n}")
            time.sleep(0.3)
        with work.commit():
            seen["atomic in commit"] = connection.in_atomic_block
            seen["recorded"] = ProcessedMessage.objects.filter(consumer=queue).count()

    worker = Worker(long_spec(queue, handler, idempotent=True), provider)
    publish(provider, queue, Job(1))
    states: list[tuple] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            states.extend(InProgress.objects.filter(queue=queue).values_list("done", "note"))
            connection.close()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert pump(worker, provider, queue, lambda: "recorded" in seen) == [
            DeliveryOutcome.HANDLED
        ]
    finally:
        done.set()
        watcher.join()
    assert seen == {"atomic": False, "atomic in commit": True, "recorded": 1}
    progress = [d for d, _ in states if d is not None]
    assert progress and progress == sorted(progress) and progress[-1] >= 4, states
    assert not InProgress.objects.filter(queue=queue).exists()  # cleared when done
    assert_empty(provider, queue)


def test_a_crash_before_the_effect_commits_repeats_the_work_with_one_effect(provider, queue):
    effects, runs = [], []

    def handler(job: Job, work) -> None:
        runs.append(job.n)
        if len(runs) == 1:
            raise Crash  # the work is done, the effect not yet committed
        with work.commit():
            effects.append(job.n)

    spec = long_spec(queue, handler, idempotent=True)
    publish(provider, queue, Job(3))
    with pytest.raises(Crash):
        pump(Worker(spec, provider), provider, queue, lambda: False)
    # the receiver closed unacked (the lease of a dead process ends the same way)
    outcomes = pump(Worker(spec, provider), provider, queue, lambda: effects)
    assert outcomes == [DeliveryOutcome.HANDLED] and runs == [3, 3] and effects == [3]
    assert ProcessedMessage.objects.filter(consumer=queue).count() == 1
    assert_empty(provider, queue)


def test_a_crash_after_the_effect_commits_but_before_the_ack_has_no_second_effect(
    provider, queue, monkeypatch
):
    effects = []

    def handler(job: Job, work) -> None:
        with work.commit():
            effects.append(job.n)
            ProcessedMessage.objects.create(consumer=f"{queue}.effect", message_id=str(job.n))

    spec = long_spec(queue, handler, idempotent=True)
    publish(provider, queue, Job(4))
    crashing = Worker(spec, provider)
    monkeypatch.setattr(crashing, "_ack", lambda delivery: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        pump(crashing, provider, queue, lambda: False)
    assert handle_next(Worker(spec, provider), provider, queue) == DeliveryOutcome.DUPLICATE
    assert effects == [4]
    assert ProcessedMessage.objects.filter(consumer=f"{queue}.effect").count() == 1
    assert_empty(provider, queue)


def handle_next(worker: Worker, provider, queue: str) -> DeliveryOutcome:
    """Receive the next delivery of ``queue`` (waiting up to 15 s) and handle it."""
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(15)
        assert delivery is not None, "the message did not come back"
        return worker.handle(delivery)


def test_a_cancelled_handler_stops_at_its_next_progress_report(provider, queue, fast_beats):
    steps: list[int] = []

    def handler(job: Job, work) -> None:
        for n in range(1000):
            steps.append(n)
            work.progress(n, 1000)
            time.sleep(0.02)

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if InProgress.objects.filter(queue=queue).update(cancel_requested_at=time_now()):
                break
            time.sleep(0.05)
        connection.close()

    worker = Worker(long_spec(queue, handler, retry="1s"), provider)
    publish(provider, queue, Job(5))
    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    outcomes = pump(worker, provider, queue, lambda: DeadLetter.objects.exists())
    canceller.join()
    assert outcomes == [DeliveryOutcome.DEAD]  # never retried
    assert len(steps) < 1000
    letter = DeadLetter.objects.get()
    assert letter.reason == DeadLetter.Reason.CANCELLED and "cancelled" in letter.error
    assert_empty(provider, queue)


def time_now():
    from django.utils import timezone

    return timezone.now()


def test_a_caught_cancel_is_handled_and_acked(provider, queue, fast_beats):
    # fast_beats: the handler hears of the cancel at its next beat, not the default's
    told = []

    def handler(job: Job, work) -> RepeatAction | None:
        try:
            while True:
                work.progress(None)
                time.sleep(0.01)
        except Cancelled:
            with work.commit():
                told.append("cancelled")
        return None

    worker = Worker(long_spec(queue, handler, idempotent=True), provider)
    publish(provider, queue, Job(6))
    InProgress.objects.create(queue=queue, message_id="x")  # another message's: ignored
    threading.Timer(
        0.5,
        lambda: InProgress.objects.exclude(message_id="x").update(cancel_requested_at=time_now()),
    ).start()
    assert pump(worker, provider, queue, lambda: told) == [DeliveryOutcome.HANDLED]
    assert not DeadLetter.objects.exists()


def test_a_renewed_lease_keeps_a_handler_longer_than_the_lease_from_running_twice(
    transactional_db, queue, settings
):
    settings.KEW = {"CONSUMERS": {"HEARTBEAT": 5.0}}  # capped at a third of the lease
    provider = DatabaseProvider(lease=1.0, poll_interval=0.05)
    runs = []

    def handler(job: Job, work) -> None:
        runs.append(time.monotonic())
        time.sleep(3.5)  # 3.5 leases, without a single progress report

    publish(provider, queue, Job(8))
    stolen = []
    stop = threading.Event()

    def rival() -> None:
        with provider.receiver(queue) as receiver:
            while not stop.is_set():
                delivery = receiver.receive(0.1)
                if delivery is not None:
                    stolen.append(delivery)
        connection.close()

    thief = threading.Thread(target=rival)
    time.sleep(0.1)
    worker = Worker(long_spec(queue, handler), provider)
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(5)
        assert delivery is not None
        thief.start()
        assert worker.handle(delivery) == DeliveryOutcome.HANDLED
    time.sleep(1.5)
    stop.set()
    thief.join()
    provider.close()
    assert len(runs) == 1 and stolen == []


@pytest.mark.artemis
def test_on_artemis_a_long_handler_keeps_its_message_and_window_0_leaves_the_next_to_others(
    transactional_db, outbox_sends, artemis_url, queue, fast_beats
):  # relayed to Artemis
    """Artemis holds an unacked message while the connection lives (no ack timeout).

    Heart-beats every second keep both connections alive while the handler
    works 3x longer than the broker's heart-beat check (2 beats); a second
    consumer gets the second message meanwhile (window 0: nothing is
    prefetched by the busy one) but never the first.
    """
    import kew

    separator = "&" if "?" in artemis_url else "?"
    provider = kew.connect(f"{artemis_url}{separator}heartbeat=1000")
    runs: list[int] = []
    other: list[int] = []

    def handler(job: Job, work) -> None:
        runs.append(job.n)
        for n in range(12):
            work.progress(n, 12)
            time.sleep(0.5)

    publish(provider, queue, Job(1), Job(2))
    worker = Worker(long_spec(queue, handler), provider)
    stop = threading.Event()

    def rival() -> None:
        with provider.receiver(queue) as receiver:
            while not stop.is_set():
                delivery = receiver.receive(0.2)
                if delivery is not None:
                    Worker(long_spec(queue, lambda j, w: other.append(j.n)), provider).handle(
                        delivery
                    )

    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None
        thief = threading.Thread(target=rival)
        thief.start()
        try:
            assert worker.handle(delivery) == DeliveryOutcome.HANDLED
        finally:
            time.sleep(1.0)
            stop.set()
            thief.join()
    provider.close()
    assert runs == [1] and other == [2], (runs, other)


@pytest.mark.rabbitmq
def test_on_rabbitmq_a_long_handler_keeps_its_message_and_prefetch_1_leaves_the_next_to_others(
    transactional_db, outbox_sends, rabbitmq_url, queue, fast_beats
):  # relayed to RabbitMQ
    """RabbitMQ holds an unacked message while the connection lives (up to consumer_timeout).

    The receiver's I/O thread sends heart-beats every second while the
    handler works 6 s on the worker's thread; a second consumer gets the
    second message meanwhile (prefetch 1) but never the first.
    """
    import kew

    provider = kew.connect(rabbitmq_url, heartbeat=1)
    runs: list[int] = []
    other: list[int] = []

    def handler(job: Job, work) -> None:
        runs.append(job.n)
        for n in range(12):
            work.progress(n, 12)
            time.sleep(0.5)

    publish(provider, queue, Job(1), Job(2))
    worker = Worker(long_spec(queue, handler), provider)
    stop = threading.Event()

    def rival() -> None:
        with provider.receiver(queue) as receiver:
            while not stop.is_set():
                delivery = receiver.receive(0.2)
                if delivery is not None:
                    Worker(long_spec(queue, lambda j, w: other.append(j.n)), provider).handle(
                        delivery
                    )

    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None
        thief = threading.Thread(target=rival)
        thief.start()
        try:
            assert worker.handle(delivery) == DeliveryOutcome.HANDLED
        finally:
            time.sleep(1.0)
            stop.set()
            thief.join()
    provider.close()
    assert runs == [1] and other == [2], (runs, other)
