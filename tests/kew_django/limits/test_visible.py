"""Each limit is shown: metrics, the admin dashboard and screen, ``kew_status``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from kew_django.limits import Limit, store
from kew_django.models import LimitSetting
from kew_django.observability.metrics import DatabaseCollector, Metrics

pytestmark = pytest.mark.django_db(transaction=True)
NAME = "limits.visible"


@pytest.fixture
def one_slot_in_use():
    LimitSetting.objects.create(name=NAME, concurrency=3)
    store.acquire(Limit(concurrency=1, name=NAME), None, holder="t", lease=30, using="default")


def test_kew_status_prints_each_limit_with_its_slots_in_use(one_slot_in_use):
    out = StringIO()
    call_command("kew_status", stdout=out)
    lines = out.getvalue().splitlines()
    header = lines.index(next(line for line in lines if line.startswith("limit ")))
    assert lines[header].split()[:3] == ["limit", "concurrency", "per"]
    (line,) = [line for line in lines[header + 1 :] if line.startswith(f"{NAME} ")]
    row = line.split()  # other limits (the reference app's) may be listed too
    assert row[:2] == [NAME, "3"] and row[5:7] == ["1", "0"]  # in use 1, parked 0
    assert "(set in the admin)" in line


def test_the_dashboard_and_the_limits_screen_show_each_limit(admin_client, one_slot_in_use):
    page = admin_client.get(reverse("admin:kew_django_dashboard")).content.decode()
    assert f'<tr data-limit="{NAME}">' in page
    assert '<td class="kew-number kew-in-use">1</td>' in page
    screen = admin_client.get(reverse("admin:kew_django_limitsetting_changelist"))
    assert screen.status_code == 200 and NAME in screen.content.decode()


def test_the_limits_screen_refuses_a_bad_value(admin_client):
    url = reverse("admin:kew_django_limitsetting_add")
    answer = admin_client.post(url, {"name": NAME, "concurrency": "0", "rate": "-1"})
    assert answer.status_code == 200 and not LimitSetting.objects.exists()


def test_metrics_count_refusals_and_waits_and_read_slots_in_use(one_slot_in_use):
    metrics = Metrics(system="test")
    metrics.limit_refused(NAME, "rate")
    metrics.limit_waited(NAME, 0.2)
    registry = metrics.registry
    labels = {"messaging_system": "test", "kew_limit": NAME}
    assert (
        registry.get_sample_value(
            "kew_limit_refused_starts_total", {**labels, "kew_limit_reason": "rate"}
        )
        == 1
    )
    assert registry.get_sample_value("kew_limit_wait_duration_seconds_count", labels) == 1
    gauges = {family.name: family for family in DatabaseCollector(close=False).collect()}
    (in_use,) = [
        s for s in gauges["kew_limit_slots_in_use"].samples if s.labels["kew_limit"] == NAME
    ]
    assert in_use.value == 1
