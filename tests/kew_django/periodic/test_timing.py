"""Ticks of interval and cron timings, across daylight-saving changes (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kew.errors import ConfigurationError
from kew_django.periodic_jobs import timing
from kew_django.periodic_jobs.timing import Cron, Every, due

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: clocks go forward 29 March 02:00, back 25 October 03:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(ticks: list[datetime]) -> list[str]:
    return [tick.astimezone(BERLIN).strftime("%d %H:%M%z") for tick in ticks]


def test_interval_ticks_are_aligned_on_the_epoch():
    five = Every("5m")
    assert five.latest(utc(2026, 1, 1, 10, 7, 30)) == utc(2026, 1, 1, 10, 5)
    assert due(five, utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 10, 20), 10) == [
        utc(2026, 1, 1, 10, 10),
        utc(2026, 1, 1, 10, 15),
        utc(2026, 1, 1, 10, 20),
    ]


@pytest.mark.parametrize("bad", ["0.5s", "1.5s", "0s"])
def test_an_interval_of_part_of_a_second_is_refused(bad):
    with pytest.raises(ConfigurationError):
        Every(bad)


def test_a_daily_0230_job_fires_at_0300_on_the_spring_forward_day():
    ticks = due(Cron("30 2 * * *", "Europe/Berlin"), utc(2026, 3, 27, 12), utc(2026, 3, 31, 12), 9)
    assert local(ticks) == ["28 02:30+0100", "29 03:00+0200", "30 02:30+0200", "31 02:30+0200"]


def test_a_daily_0230_job_fires_once_on_the_fall_back_day():
    daily = Cron("30 2 * * *", "Europe/Berlin")
    ticks = due(daily, utc(2026, 10, 23, 12), utc(2026, 10, 27, 12), 9)
    assert local(ticks) == ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100", "27 02:30+0100"]


def test_an_hourly_job_skips_the_missing_hour_and_fires_twice_in_the_repeated_one():
    hourly = Cron("30 * * * *", "Europe/Berlin")
    spring = due(hourly, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 99)  # one local day
    fall = due(hourly, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 99)
    assert len(spring) == 23 and "29 02:30+0100" not in local(spring)
    assert len(fall) == 25
    assert local(fall)[2:4] == ["25 02:30+0200", "25 02:30+0100"]


def test_latest_finds_the_last_tick_at_or_before_an_instant_across_a_change():
    daily = Cron("30 2 * * *", "Europe/Berlin")
    assert daily.latest(utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, exactly
    assert daily.latest(utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 28, 1, 30)
    assert daily.latest(utc(2026, 10, 25, 23)) == utc(2026, 10, 25, 0, 30)


def test_ticks_of_an_expression_with_seconds():
    every_other = Cron("*/2 * * * * *", "UTC")
    start = utc(2026, 1, 1)
    assert due(every_other, start, start + timedelta(seconds=5), 9) == [
        start + timedelta(seconds=2),
        start + timedelta(seconds=4),
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "words"),
    [("61 * * * *", "UTC", "cron"), ("0 3 * *", "UTC", "cron"), ("0 3 * * *", "Mars/Base", "zone")],
)
def test_a_bad_expression_or_zone_is_a_configuration_error(expression, zone, words):
    with pytest.raises(ConfigurationError, match=words):
        Cron(expression, zone)


def test_cron_without_the_periodic_extra_names_it(monkeypatch):
    monkeypatch.setattr(timing, "CronSim", None)
    with pytest.raises(ConfigurationError, match=r"kew\[periodic\]"):
        Cron("0 3 * * *", "UTC")
    assert str(Every("5m")) == "every 5m" and str(Every(timedelta(hours=1))) == "every 3600s"
