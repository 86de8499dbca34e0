"""``@periodic`` on tasks and functions, the registry, the system checks, a task's tick."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kew.errors import ConfigurationError
from kew_django import periodic
from kew_django.models import TaskResultRecord
from kew_django.periodic_jobs.checks import check_periodic
from kew_django.periodic_jobs.registry import periodic_jobs
from kew_django.periodic_jobs.ticker import ticker_for_process
from tests.kew_django.periodic.conftest import ticker
from tests.kew_django.tasks.tasks import add


@pytest.fixture(autouse=True)
def jobs():
    """An empty registry, emptied again after the test."""
    periodic_jobs.clear()
    yield periodic_jobs
    periodic_jobs.clear()


def test_a_function_with_a_channel_and_a_task_are_declared_by_their_dotted_names(channel):
    @periodic(every="5m", channel=channel)
    def report(tick):
        return {"at": tick.isoformat()}

    periodic(cron="0 3 * * *", timezone="Europe/Paris")(add)
    names = sorted(spec.name for spec in periodic_jobs)
    assert names == sorted([add.module_path, f"{__name__}.{report.__qualname__}"])
    assert check_periodic() == []


def test_anything_else_is_refused_when_decorated():
    with pytest.raises(ConfigurationError, match="django.tasks task"):
        periodic(every="1m")(lambda tick: None)


@pytest.mark.parametrize(
    ("options", "check_id"),
    [
        ({"cron": "0 25 * * *"}, "kew.E040"),
        ({"every": "soon"}, "kew.E040"),
        ({"every": "1m", "cron": "* * * * *"}, "kew.E040"),
        ({"every": "1m", "catch_up": "some"}, "kew.E040"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Atlantis"}, "kew.E041"),
    ],
)
def test_a_bad_declaration_is_a_system_check_error_with_a_hint(channel, options, check_id):
    periodic(channel=channel, **options)(lambda tick: {})
    (error,) = check_periodic()
    assert error.id == check_id and error.hint
    with pytest.raises(ConfigurationError):
        ticker_for_process()


def test_two_jobs_of_one_name_are_an_error(channel):
    periodic(every="1m", channel=channel, name="nightly")(lambda tick: {})
    periodic(every="1h", name="nightly")(add)
    assert [error.id for error in check_periodic()] == ["kew.E042"]


def test_no_ticker_without_jobs_or_when_disabled(settings, channel):
    assert ticker_for_process() is None
    periodic(every="1m", channel=channel)(lambda tick: {})
    assert ticker_for_process() is not None
    settings.KEW = {"PERIODIC": {"ENABLED": False}}
    assert ticker_for_process() is None


@pytest.mark.django_db(transaction=True)
def test_a_tick_of_a_task_enqueues_it_through_the_kew_backend(clock):
    periodic(every=timedelta(minutes=1))(add)
    (job,) = periodic_jobs
    ticks = ticker(clock, job)
    ticks.turn()
    clock.move(minutes=1)
    ticks.turn()
    ticks.turn()
    (record,) = TaskResultRecord.objects.all()
    assert record.task_path == add.module_path and record.status == "READY"


@pytest.mark.parametrize(
    "section",
    [{"GRACE": "soon"}, {"ENABLED": "yes"}, {"EVERY": "1m"}, "on"],
)
def test_a_bad_periodic_setting_is_a_system_check_error(settings, section):
    settings.KEW = {"PERIODIC": section}
    (error,) = check_periodic()
    assert error.id == "kew.E043" and "PERIODIC" in error.msg and error.hint


def test_a_bad_interval_says_how_to_write_one(channel):
    periodic(every="soon", channel=channel)(lambda tick: {})
    (error,) = check_periodic()
    assert "every=: 'soon' is no interval" in error.msg
