"""The ticker with the clock injected: one firing per tick, catch-up policies, pause, DST."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from kew_django.models import OutboxMessage, PeriodicJob, QueuedMessage
from kew_django.periodic_jobs import status
from kew_django.periodic_jobs.firing import fire, tick_id
from kew_django.periodic_jobs.ticker import Ticker
from tests.kew_django.conftest import written
from tests.kew_django.periodic.conftest import fired, tick_job, ticker

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_job_fires_nothing_from_before_it_was_first_seen(clock, channel):
    job = tick_job(channel)
    first = ticker(clock, job)
    first.turn()
    assert fired(channel) == []
    clock.move(minutes=1)
    first.turn()
    assert fired(channel) == ["2026-06-01T12:01:00+00:00"]


def test_a_tick_is_fired_once_however_many_tickers_try_it(clock, channel):
    job = tick_job(channel)
    tickers = [ticker(clock, job) for _ in range(3)]
    tickers[0].turn()
    clock.move(minutes=1)
    for each in tickers:
        each.turn()
    assert fired(channel) == ["2026-06-01T12:01:00+00:00"]
    (row,) = written(channel.queue)
    assert row.message_id == str(tick_id(job.name, datetime(2026, 6, 1, 12, 1, tzinfo=UTC)))
    assert PeriodicJob.objects.get(name=job.name).fired == 1


def test_a_tick_sent_through_the_outbox_carries_its_id_too(outbox_sends, clock, channel):
    job = tick_job(channel)
    tickers = [ticker(clock, job) for _ in range(2)]
    tickers[0].turn()
    clock.move(minutes=1)
    for each in tickers:
        each.turn()
    (row,) = OutboxMessage.objects.filter(queue=channel.queue)
    assert row.id == tick_id(job.name, datetime(2026, 6, 1, 12, 1, tzinfo=UTC))
    assert not QueuedMessage.objects.filter(queue=channel.queue).exists()


def test_fire_refuses_a_tick_the_database_clock_does_not_see_as_due(clock, channel):
    job = tick_job(channel)
    ticker(clock, job).turn()
    future = datetime(2999, 1, 1, tzinfo=UTC)
    assert not fire(job, future, using="default")
    assert fired(channel) == []


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("latest", ["2026-06-01T12:10:00+00:00"]),
        ("all", [f"2026-06-01T12:{m:02}:00+00:00" for m in range(1, 11)]),
        ("none", []),
    ],
)
def test_ticks_missed_while_no_process_ran_follow_the_catch_up_policy(
    clock, channel, catch_up, expected
):
    job = tick_job(channel, catch_up=catch_up)
    ticker(clock, job).turn()
    clock.move(minutes=10, seconds=30)  # ten ticks due; the last one 30 s ago, past the grace
    ticker(clock, job).turn()
    assert fired(channel) == expected
    row = PeriodicJob.objects.get(name=job.name)
    assert row.done_until == datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    clock.move(seconds=35)  # 12:11:05
    ticker(clock, job).turn()
    assert fired(channel) == [*expected, "2026-06-01T12:11:00+00:00"], "then on time again"


def test_latest_fires_an_on_time_tick_and_skips_the_missed_ones_before_it(clock, channel):
    job = tick_job(channel)
    ticker(clock, job).turn()
    clock.move(minutes=10, seconds=5)  # 12:10 is 5 s late: within the grace of 10 s
    ticker(clock, job).turn()
    assert fired(channel) == ["2026-06-01T12:10:00+00:00"]


def test_a_paused_job_fires_nothing_and_resumes_without_the_ticks_it_missed(clock, channel):
    job = tick_job(channel, catch_up="all")
    ticks = ticker(clock, job)
    ticks.turn()
    assert status.pause([job.name]) == 1
    clock.move(minutes=3)
    ticks.turn()
    assert fired(channel) == []
    assert status.resume([job.name]) == 1  # the database's now is after the injected clock
    clock.move(minutes=1)
    ticks.turn()
    assert fired(channel) == []
    row = PeriodicJob.objects.get(name=job.name)
    assert not row.paused and row.fired == 0


def test_a_job_whose_code_fails_keeps_its_tick_due_until_it_succeeds(clock, channel):
    calls = []

    def build(tick):
        calls.append(tick)
        if len(calls) == 1:
            raise RuntimeError("the first try fails")
        return {"tick": tick.isoformat()}

    job = tick_job(channel)
    job = type(job)(job.name, every="1m", channel=channel, build=build)
    ticks = ticker(clock, job)
    ticks.turn()
    clock.move(minutes=1)
    ticks.turn()
    assert fired(channel) == []
    ticks.turn()
    assert fired(channel) == ["2026-06-01T12:01:00+00:00"]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (  # spring forward: 02:30 does not exist on 29 March; it fires at 03:00 CEST
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            ["2026-03-28T01:30:00", "2026-03-29T01:00:00", "2026-03-30T00:30:00"],
        ),
        (  # fall back: 02:30 happens twice on 25 October; it fires at the first one
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            ["2026-10-24T00:30:00", "2026-10-25T00:30:00", "2026-10-26T01:30:00"],
        ),
    ],
)
def test_a_daily_cron_job_across_a_daylight_saving_change_fires_once_a_day(
    clock, channel, start, expected
):
    job = tick_job(channel, every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    clock.now = start
    ticks = ticker(clock, job)
    for _ in range(3 * 24 * 4):  # three days, a turn every 15 minutes
        ticks.turn()
        clock.move(minutes=15)
    assert fired(channel) == [f"{utc}+00:00" for utc in expected]


def test_an_hourly_cron_job_fires_25_times_on_the_fall_back_day(clock, channel):
    job = tick_job(channel, every=None, cron="30 * * * *", timezone="Europe/Berlin", catch_up="all")
    clock.now = datetime(2026, 10, 24, 22, tzinfo=UTC)  # midnight in Berlin
    ticks = ticker(clock, job)
    ticks.turn()
    clock.move(hours=25)  # the whole local day at once: every tick in one catch-up
    ticks.turn()
    assert len(fired(channel)) == 25
    assert len(set(fired(channel))) == 25


def test_a_host_whose_clock_runs_an_hour_ahead_fires_on_the_database_clock(channel, monkeypatch):
    real = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real() + timedelta(hours=1))
    job = tick_job(channel, every="1s")
    ticks = Ticker([job], grace=timedelta(seconds=10))  # its own clock: host time + offset
    deadline = time.monotonic() + 10
    while not fired(channel) and time.monotonic() < deadline:
        time.sleep(ticks.turn())
    (tick,) = fired(channel)[:1]
    assert abs(datetime.fromisoformat(tick) - real()) < timedelta(seconds=5)
