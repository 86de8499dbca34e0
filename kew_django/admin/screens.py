"""Admin screens for operators: outbox messages, dead letters, processed messages, dashboard.

Nothing here is editable by hand. Outbox messages can be retried or
discarded; dead letters requeued (as they are, or with an edited payload)
or discarded. Payloads, headers and errors are always shown escaped.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import truncatechars
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.timesince import timesince

from kew_django import operations
from kew_django.admin.actions import (
    Operation,
    OperatorAdmin,
    render_headers,
    render_payload,
    render_text,
    short_time,
)
from kew_django.admin.dashboard import dashboard_view
from kew_django.admin.forms import EditPayloadForm
from kew_django.models import DeadLetter, OutboxMessage, ProcessedMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(OperatorAdmin):
    list_display = ["short_id", "queue", "status", "age", "attempts", "error_excerpt"]
    list_filter = ["status", "queue"]
    search_fields = ["id", "queue", "last_error"]
    ordering = ["-created_at"]
    actions = ["retry_now", "discard"]
    fieldsets = [
        (None, {"fields": ["id", "queue", "status", "attempts", "requeue_of"]}),
        ("Delivery", {"fields": ["created_at", "deliver_at", "sent_at"]}),
        ("Content", {"fields": ["content_type", "headers_view", "payload_view"]}),
        ("Last error", {"fields": ["last_error_view"]}),
    ]
    readonly_fields = flatten_fieldsets(fieldsets)
    operations = (
        Operation(
            name="retry_now",
            permission="retry_outboxmessage",
            verb="retry",
            applies_to="failed",
            actionable=operations.RETRYABLE,
            perform=operations.retry_outbox_messages,
            log_message=lambda row: "Retried: failed → pending, attempts reset, due now.",
        ),
        Operation(
            name="discard",
            permission="discard_outboxmessage",
            verb="discard",
            applies_to="pending or failed",
            actionable=operations.DISCARDABLE,
            perform=operations.discard_outbox_messages,
            log_message=lambda row: "Discarded: will not be published (kept for audit).",
        ),
    )

    @admin.display(description="id")
    def short_id(self, obj: OutboxMessage) -> str:
        return format_html('<span title="{}">{}…</span>', obj.pk, str(obj.pk)[:8])

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: OutboxMessage) -> str:
        return timesince(obj.created_at)

    @admin.display(description="last error")
    def error_excerpt(self, obj: OutboxMessage) -> str:
        return truncatechars(obj.last_error, 80)

    @admin.display(description="headers")
    def headers_view(self, obj: OutboxMessage) -> str:
        return render_headers(obj.headers)

    @admin.display(description="payload")
    def payload_view(self, obj: OutboxMessage) -> str:
        return render_payload(obj.payload)

    @admin.display(description="last error")
    def last_error_view(self, obj: OutboxMessage) -> str:
        return render_text(obj.last_error)

    @admin.action(description="Retry now (failed → pending)")
    def retry_now(self, request, queryset):
        return self.run_operation(request, queryset, "retry_now")

    @admin.action(description="Discard (keep for audit)")
    def discard(self, request, queryset):
        return self.run_operation(request, queryset, "discard")

    def get_urls(self):
        view = self.admin_site.admin_view(self.dashboard)
        return [path("dashboard/", view, name="kew_django_dashboard"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "subtitle": f"Outbox message {object_id}"}
        return super().change_view(request, object_id, form_url, extra_context)

    def dashboard(self, request):
        """Show the per-queue dashboard to users who may view outbox messages and dead letters."""
        dead_letters = self.admin_site.get_model_admin(DeadLetter)
        if not (self.has_view_permission(request) and dead_letters.has_view_permission(request)):
            raise PermissionDenied("the dashboard needs view permission on outbox and dead letters")
        return dashboard_view(request, admin_site=self.admin_site)


@admin.register(DeadLetter)
class DeadLetterAdmin(OperatorAdmin):
    list_display = [
        "id",
        "queue",
        "reason_code",
        "state",
        "first_failed",
        "last_failed",
        "attempts",
        "error_excerpt",
    ]
    list_filter = ["state", "reason", "queue"]
    search_fields = ["message_id", "queue", "error"]
    ordering = ["-last_failed_at"]
    actions = ["requeue", "edit_and_requeue", "discard"]
    fieldsets = [
        (None, {"fields": ["queue", "message_id", "reason", "state", "attempts"]}),
        ("When", {"fields": ["first_failed_at", "last_failed_at", "requeued_as_link"]}),
        ("Content", {"fields": ["content_type", "headers_view", "payload_view"]}),
        ("Error", {"fields": ["error_view", "traceback_view"]}),
    ]
    readonly_fields = flatten_fieldsets(fieldsets)
    operations = (
        Operation(
            name="requeue",
            permission="requeue_deadletter",
            verb="requeue",
            applies_to="dead",
            actionable=operations.DEAD,
            perform=operations.requeue_dead_letters,
            log_message=lambda row: f"Requeued as outbox message {row.requeued_as}.",
        ),
        Operation(
            name="edit_and_requeue",
            permission="requeue_deadletter",
            verb="edit and requeue",
            applies_to="dead",
            actionable=operations.DEAD,
        ),
        Operation(
            name="discard",
            permission="discard_deadletter",
            verb="discard",
            applies_to="dead",
            actionable=operations.DEAD,
            perform=operations.discard_dead_letters,
            log_message=lambda row: "Discarded (kept for the record).",
        ),
    )

    @admin.display(description="reason", ordering="reason")
    def reason_code(self, obj: DeadLetter) -> str:
        return format_html('<span title="{}">{}</span>', obj.get_reason_display(), obj.reason)

    @admin.display(description="first failed", ordering="first_failed_at")
    def first_failed(self, obj: DeadLetter) -> str:
        return short_time(obj.first_failed_at)

    @admin.display(description="last failed", ordering="last_failed_at")
    def last_failed(self, obj: DeadLetter) -> str:
        return short_time(obj.last_failed_at)

    @admin.display(description="error")
    def error_excerpt(self, obj: DeadLetter) -> str:
        return truncatechars(obj.error, 80)

    @admin.display(description="requeued as")
    def requeued_as_link(self, obj: DeadLetter) -> str:
        if not obj.requeued_as:
            return "-"
        url = reverse("admin:kew_django_outboxmessage_change", args=[obj.requeued_as])
        return format_html('<a href="{}">{}</a>', url, obj.requeued_as)

    @admin.display(description="headers")
    def headers_view(self, obj: DeadLetter) -> str:
        return render_headers(obj.headers)

    @admin.display(description="payload")
    def payload_view(self, obj: DeadLetter) -> str:
        return render_payload(obj.payload)

    @admin.display(description="error")
    def error_view(self, obj: DeadLetter) -> str:
        return render_text(obj.error)

    @admin.display(description="traceback")
    def traceback_view(self, obj: DeadLetter) -> str:
        return render_text(obj.traceback)

    @admin.action(description="Requeue (as they are)")
    def requeue(self, request, queryset):
        return self.run_operation(request, queryset, "requeue")

    @admin.action(description="Edit payload and requeue (one message)")
    def edit_and_requeue(self, request, queryset):
        self.require(request, "edit_and_requeue")
        letters = list(queryset.filter(operations.DEAD).values_list("pk", flat=True)[:2])
        if len(letters) != 1:
            self.message_user(
                request, "Select exactly one dead message to edit and requeue.", messages.WARNING
            )
            return None
        return HttpResponseRedirect(reverse("admin:kew_django_deadletter_edit", args=letters))

    @admin.action(description="Discard (keep for the record)")
    def discard(self, request, queryset):
        return self.run_operation(request, queryset, "discard")

    def get_urls(self):
        view = self.admin_site.admin_view(self.edit_view)
        edit = path("<int:object_id>/edit-and-requeue/", view, name="kew_django_deadletter_edit")
        return [edit, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": f"Dead letter {object_id}",  # str() is too long beside the buttons
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def operation_tools(self, request, object_id) -> list[dict]:
        tools = super().operation_tools(request, object_id)
        if any(tool["name"] == "requeue" for tool in tools):  # dead, and the user may requeue
            edit = reverse("admin:kew_django_deadletter_edit", args=[object_id])
            tools.insert(1, {"name": "edit-requeue", "verb": "edit and requeue", "url": edit})
        return tools

    def edit_view(self, request, object_id: int):
        """Edit a dead letter's payload as JSON and requeue it once it fits the consumer."""
        self.require(request, "edit_and_requeue")
        letter = get_object_or_404(DeadLetter, pk=object_id)
        if letter.state != DeadLetter.State.DEAD:
            return self.not_dead(request, letter)
        form = EditPayloadForm(request.POST or None, letter=letter)
        if request.method == "POST" and form.is_valid():
            try:
                message = self.requeue_edited(request, letter, form.cleaned_data["payload"])
            except operations.NotActionable as error:
                self.message_user(request, str(error), messages.WARNING)
            else:
                self.message_user(request, f"Requeued with the edited payload as {message.pk}.")
            return HttpResponseRedirect(self.change_url(letter.pk))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Edit and requeue dead letter {letter.pk}",
            "opts": self.opts,
            "original": letter,
            "form": form,
            "payload_type_name": getattr(form.payload_type, "__qualname__", ""),
            "consumer": form.consumer,
            "original_payload": render_payload(letter.payload),
            "media": self.media + form.media,
        }
        template = "admin/kew_django/deadletter/edit_and_requeue.html"
        return TemplateResponse(request, template, context)

    def requeue_edited(self, request, letter: DeadLetter, payload: bytes) -> OutboxMessage:
        """Requeue ``letter`` with ``payload`` and log both rows, in one transaction."""
        with transaction.atomic():
            message = operations.requeue_dead_letter(
                letter, payload=payload, content_type="application/json"
            )
            self.log_change(
                request, letter, f"Edited the payload and requeued as outbox message {message.pk}."
            )
            self.log_addition(
                request, message, f"Requeued from dead letter {letter.pk} with an edited payload."
            )
        return message

    def not_dead(self, request, letter: DeadLetter) -> HttpResponseRedirect:
        self.message_user(request, f"This message is {letter.state}, not dead.", messages.WARNING)
        return HttpResponseRedirect(self.change_url(letter.pk))


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(OperatorAdmin):
    list_display = ["consumer", "message_id", "processed_at"]
    list_filter = ["consumer"]
    search_fields = ["message_id", "consumer"]
    ordering = ["-processed_at"]
    readonly_fields = ["consumer", "message_id", "processed_at"]
