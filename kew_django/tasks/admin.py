"""The admin's list of task results: read-only, filtered by status and task."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from kew_django.models import TaskResultRecord


class TaskResultAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task_path",
        "queue_name",
        "status",
        "enqueued_at",
        "finished_at",
        "tries",
    ]
    list_filter = ["status", "queue_name", "task_path"]
    search_fields = ["id", "task_path"]
    ordering = ["-enqueued_at"]
    readonly_fields = [field.name for field in TaskResultRecord._meta.fields]

    @admin.display(description="attempts")
    def tries(self, record: TaskResultRecord) -> int:
        return len(record.worker_ids)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def register(site: admin.AdminSite) -> None:
    """Add the task results screen to ``site`` (once)."""
    if not site.is_registered(TaskResultRecord):
        site.register(TaskResultRecord, TaskResultAdmin)
