"""The "in progress" screen: what each worker runs now, per queue, and a way to stop it.

Lists the ``InProgress`` rows the workers' heartbeats write, marks a
heartbeat older than three beats ("worker gone?": such rows are cleared by
the next sweep of a consumer process, ``workers.sweep``, or by a cancel,
which answers that it is not running), and has one action, *Ask to stop*.
What operators see: docs/admin.md#messages-in-progress.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from kew_django import operations
from kew_django.admin.actions import Operation, OperatorAdmin, short_time
from kew_django.models import InProgress, QueuedMessage
from kew_django.workers import sweep


@admin.register(InProgress)
class InProgressAdmin(OperatorAdmin):
    list_display = [
        "queue",
        "message_id",
        "attempt",
        "worker",
        "running_since",
        "last_heartbeat",
        "progress_bar",
        "note",
        "cancel_state",
    ]
    list_filter = ["queue"]
    search_fields = ["message_id", "queue", "worker"]
    ordering = ["queue", "started_at"]
    actions = ["cancel"]
    readonly_fields = [
        "queue",
        "message_id",
        "attempt",
        "worker",
        "started_at",
        "heartbeat_at",
        "done",
        "total",
        "note",
        "cancel_requested_at",
        "cancel_requested_by",
    ]
    operations = (
        Operation(
            name="cancel",
            permission="cancel_inprogress",
            verb="cancel",
            applies_to="running without a cancel request",
            actionable=operations.CANCELLABLE,
            perform=operations.cancel_in_progress,
            log_message=lambda row: "Asked to stop at its next progress report.",
        ),
    )

    @admin.display(description="running since", ordering="started_at")
    def running_since(self, obj: InProgress) -> str:
        return (
            f"{short_time(obj.started_at)} ({timesince(obj.started_at)})" if obj.started_at else ""
        )

    @admin.display(description="last heartbeat", ordering="heartbeat_at")
    def last_heartbeat(self, obj: InProgress) -> str:
        if obj.heartbeat_at is None:
            return "never"
        age = timezone.now() - obj.heartbeat_at
        stale = age > sweep.stale_after()
        return f"{age.total_seconds():.0f} s ago" + (" (worker stopped)" if stale else "")

    @admin.display(description="progress")
    def progress_bar(self, obj: InProgress) -> str:
        percent = obj.percent
        if percent is None:
            return f"{obj.done}" if obj.done is not None else "—"
        return format_html(
            '<progress max="100" value="{}"></progress> {}%', f"{percent:.1f}", f"{percent:.0f}"
        )

    @admin.display(description="cancel")
    def cancel_state(self, obj: InProgress) -> str:
        if obj.cancel_requested_at is None:
            return ""
        return f"asked {short_time(obj.cancel_requested_at)} by {obj.cancel_requested_by}"

    @admin.action(description="Ask to stop (at the next progress report)")
    def cancel(self, request, queryset):
        self.require(request, "cancel")
        for row in operations.stopped_in_progress(queryset):
            when = short_time(row.heartbeat_at) if row.heartbeat_at else "an unknown time"
            self.message_user(
                request,
                f"{row}: not running: its worker stopped at {when}; "
                "the message goes back to its queue",
                messages.WARNING,
            )
        if not queryset.exists():
            return None
        return self.run_operation(request, queryset, "cancel")

    def changelist_view(self, request, extra_context=None):
        queue = request.GET.get("queue__exact")
        waiting = QueuedMessage.objects.filter(lease_token__isnull=True)
        if queue:
            waiting = waiting.filter(queue=queue)
        context = {"title": f"Messages in progress{f' on {queue}' if queue else ''}"}
        context["subtitle"] = f"{waiting.count()} waiting in the database queue"
        return super().changelist_view(request, {**context, **(extra_context or {})})
