"""The periodic jobs screen: each job's timing, last and next firing, and pause/resume.

Rows are written by the processes' tickers (``kew_django.periodic_jobs``);
an operator only pauses and resumes, which every process reads at its
next tick. What operators see: docs/periodic.md#the-admin.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from kew_django.models import PeriodicJob
from kew_django.periodic_jobs.registry import periodic_jobs
from kew_django.periodic_jobs.status import next_tick, pause, resume


def when(value) -> str:
    """Return ``value`` in the current time zone, to the second."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


@admin.register(PeriodicJob)
class PeriodicJobAdmin(admin.ModelAdmin):
    list_display = ["name", "timing", "state", "last_firing", "next_firing", "fired"]
    list_filter = ["paused"]
    search_fields = ["name"]
    ordering = ["name"]
    actions = ["pause_jobs", "resume_jobs"]
    readonly_fields = [field.name for field in PeriodicJob._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.pause_periodicjob")

    @admin.display(description="timing")
    def timing(self, job: PeriodicJob) -> str:
        try:
            return str(periodic_jobs.get(job.name).timing)
        except KeyError:
            return "not declared (no code defines it now)"
        except Exception as error:  # noqa: BLE001 - the system check reports it too
            return f"invalid: {error}"

    @admin.display(description="state", ordering="paused")
    def state(self, job: PeriodicJob) -> str:
        return "paused" if job.paused else "active"

    @admin.display(description="last firing", ordering="last_tick")
    def last_firing(self, job: PeriodicJob) -> str:
        return when(job.last_tick) if job.last_tick else "never"

    @admin.display(description="next firing")
    def next_firing(self, job: PeriodicJob) -> str:
        try:
            spec = periodic_jobs.get(job.name)
        except KeyError:
            return "—"
        tick = next_tick(spec, job, timezone.now())
        return when(tick)

    @admin.action(description="Pause (no process fires them)", permissions=["pause"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[PeriodicJob]) -> None:
        self._change(request, queryset, pause, "Paused.")

    @admin.action(description="Resume (from the next tick on)", permissions=["pause"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[PeriodicJob]) -> None:
        self._change(request, queryset, resume, "Resumed; ticks missed while paused never fire.")

    def _change(self, request, queryset, operation, message: str) -> None:
        jobs = list(queryset)
        changed = operation([job.name for job in jobs])
        for job in jobs:
            self.log_change(request, job, message)
        self.message_user(request, f"{changed} periodic job(s): {message}", messages.SUCCESS)
