"""What operators see and do: kew_status and the admin list jobs; the admin pauses and resumes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from kew_django.models import PeriodicJob
from kew_django.periodic_jobs.registry import periodic_jobs
from tests.kew_django.periodic.conftest import tick_job, ticker

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/kew_django/periodicjob/"


@pytest.fixture
def job(channel, clock):
    """A declared job every minute, seen and fired once at 12:01 UTC."""
    periodic_jobs.clear()
    spec = periodic_jobs.register(tick_job(channel))
    ticks = ticker(clock, spec)
    ticks.turn()
    clock.move(minutes=1)
    ticks.turn()
    yield spec
    periodic_jobs.clear()


def login(*codenames: str) -> Client:
    user = User.objects.create_user(f"operator{User.objects.count()}", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="kew_django", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def test_kew_status_prints_each_job_with_its_last_and_next_firing(job):
    PeriodicJob.objects.create(name="gone.job", done_until="2026-01-01T00:00Z")
    out = StringIO()
    call_command("kew_status", stdout=out)
    lines = out.getvalue().splitlines()
    (line,) = [line for line in lines if line.startswith(f"  {job.name}")]
    assert "every 1m  active  last 2026-06-01 12:01:00 UTC  next " in line
    assert line.endswith("fired 1")
    (gone,) = [line for line in lines if "gone.job" in line]
    assert "not declared" in gone


def test_the_admin_lists_jobs_and_an_operator_with_the_permission_pauses_and_resumes(job):
    viewer = login("view_periodicjob")
    page = viewer.get(CHANGELIST).content.decode()
    assert job.name in page and "2026-06-01 12:01:00" in page and "every 1m" in page
    assert "pause_jobs" not in page, "no pause action without the permission"
    viewer.post(
        CHANGELIST, {"action": "pause_jobs", "_selected_action": [PeriodicJob.objects.get().pk]}
    )
    assert not PeriodicJob.objects.get().paused

    operator = login("view_periodicjob", "pause_periodicjob")
    pk = PeriodicJob.objects.get().pk
    operator.post(CHANGELIST, {"action": "pause_jobs", "_selected_action": [pk]})
    assert PeriodicJob.objects.get().paused
    assert "paused" in operator.get(CHANGELIST).content.decode()
    operator.post(CHANGELIST, {"action": "resume_jobs", "_selected_action": [pk]})
    assert not PeriodicJob.objects.get().paused
    assert LogEntry.objects.filter(object_id=str(pk)).count() == 2
