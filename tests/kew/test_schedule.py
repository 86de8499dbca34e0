from datetime import timedelta

import pytest

from kew import ConfigurationError, Message, RepeatAction, Repeater, Retry, Schedule
from kew.schedule import parse_interval


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


def test_repeater_asks_for_the_next_interval_while_consumer_repeats():
    repeater = Repeater(lambda data: RepeatAction.REPEAT, [5, 60])
    assert repeater(Message("x")) == Retry("x", timedelta(seconds=5))
    assert repeater(Message("x", delivery_count=2)) == Retry("x", timedelta(seconds=60))


def test_repeater_calls_exhausted_handler_after_the_last_interval():
    exhausted = []
    repeater = Repeater(
        lambda d: RepeatAction.REPEAT, [5], on_exhausted=lambda data, error: exhausted.append(data)
    )
    assert repeater(Message("x", delivery_count=2)) is None
    assert exhausted == ["x"]


def test_repeater_stops_on_stop_or_none():
    exhausted = []
    for answer in (RepeatAction.STOP, None):
        repeater = Repeater(
            lambda d, a=answer: a, [5], on_exhausted=lambda data, error: exhausted.append(data)
        )
        assert repeater(Message("x")) is None
    assert exhausted == []


def test_retry_on_turns_listed_errors_into_repeats_and_lets_others_through():
    def fails(data):
        raise (OSError if data == "io" else KeyError)(data)

    repeater = Repeater(fails, [1], retry_on=(OSError,))
    assert repeater(Message("io")) == Retry("io", timedelta(seconds=1))
    with pytest.raises(KeyError):
        repeater(Message("key"))


def test_once_off_repeater_goes_straight_to_exhausted():
    exhausted = []
    repeater = Repeater.once_off(
        lambda d: RepeatAction.REPEAT, on_exhausted=lambda data, error: exhausted.append(data)
    )
    assert repeater(Message("x")) is None
    assert exhausted == ["x"]
