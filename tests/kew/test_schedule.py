from datetime import timedelta

import pytest

from kew import ConfigurationError, GiveUpReason, Message, PermanentError, Retry, Schedule
from kew.schedule import GiveUp, after_failure, parse_interval


def test_parse_intervals_of_every_unit():
    assert parse_interval("250ms") == timedelta(milliseconds=250)
    assert parse_interval("10s") == timedelta(seconds=10)
    assert parse_interval("2m") == timedelta(minutes=2)
    assert parse_interval("1.5h") == timedelta(minutes=90)
    assert parse_interval("1d") == timedelta(days=1)


@pytest.mark.parametrize("text", ["10", "ten s", "-1s", "5 weeks", ""])
def test_bad_interval_names_the_format(text):
    with pytest.raises(ConfigurationError, match="number and a unit"):
        parse_interval(text)


def test_schedule_parse_accepts_commas_and_spaces():
    schedule = Schedule.parse("10s, 10s 2m,1d")
    assert schedule.intervals == (
        timedelta(seconds=10),
        timedelta(seconds=10),
        timedelta(minutes=2),
        timedelta(days=1),
    )
    assert schedule.max_deliveries == 5


def test_delay_after_follows_the_delivery_count_then_runs_out():
    schedule = Schedule.of(1, "2s", timedelta(seconds=3))
    assert [schedule.delay_after(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=3),
        None,
    ]


def test_negative_interval_is_refused():
    with pytest.raises(ConfigurationError, match="negative"):
        Schedule.of(-1)


def test_after_failure_retries_on_the_next_interval_of_the_delivery_count():
    schedule = Schedule.of(5, 60)
    assert after_failure(schedule, Message("x"), None) == Retry("x", timedelta(seconds=5))
    second = Message("x", delivery_count=2)
    assert after_failure(schedule, second, OSError()) == Retry("x", timedelta(seconds=60))


def test_after_failure_gives_up_when_the_schedule_runs_out_or_the_error_is_permanent():
    error = PermanentError("no")
    exhausted = after_failure(Schedule.of(5), Message("x", delivery_count=2), None)
    assert exhausted == GiveUp(GiveUpReason.EXHAUSTED, None)
    assert after_failure(Schedule.of(5), Message("x"), error) == GiveUp(GiveUpReason.FAILED, error)
    assert after_failure(Schedule(), Message("x"), None).reason is GiveUpReason.EXHAUSTED
