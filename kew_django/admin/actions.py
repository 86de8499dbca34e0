"""Admin plumbing for the operator screens: actions, confirmation, audit log, rendering.

An operator action (requeue, discard, retry) is shown only to users with
its permission and refused with 403 to anyone else who posts it. It first
renders a confirmation page that says how many rows, in which queues, it
will change and how many selected rows it will skip; the confirmed post
runs the operation and writes one LogEntry per changed row in the same
transaction.

Payloads, headers and error texts are rendered escaped, in ``<pre>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from kew_django import operations
from kew_django.operations import OperationResult


@dataclass(frozen=True)
class Operation:
    """One operator action: its permission, what it applies to and how it is done."""

    name: str  # the admin action's name
    permission: str  # codename in kew_django, e.g. "requeue_deadletter"
    verb: str  # "requeue", shown on the confirmation page and in messages
    applies_to: str  # "dead", the state a row must be in to be acted on
    actionable: Q
    perform: Callable[[QuerySet], OperationResult] | None = None  # None: it has a page of its own
    log_message: Callable[[Any], str] = str  # the LogEntry message for a changed row (a model)


class OperatorAdmin(admin.ModelAdmin):
    """A read-only ModelAdmin whose only changes are operator actions."""

    operations: tuple[Operation, ...] = ()
    show_full_result_count = False  # filtered pages: no second COUNT(*) of the whole table

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_operation_permission(self, request, name: str) -> bool:
        """Return whether the user may run the operation called ``name``."""
        operation = self.operation(name)
        return request.user.has_perm(f"{self.opts.app_label}.{operation.permission}")

    def operation(self, name: str) -> Operation:
        return next(op for op in self.operations if op.name == name)

    def require(self, request, name: str) -> None:
        """Raise PermissionDenied (403) unless the user may view the rows and run ``name``."""
        if not self.has_view_permission(request):
            raise PermissionDenied(f"you may not view {self.opts.verbose_name_plural}")
        if not self.has_operation_permission(request, name):
            verb, names = self.operation(name).verb, self.opts.verbose_name_plural
            raise PermissionDenied(f"you may not {verb} {names}")

    def get_actions(self, request, action_location=None):
        # Django 6.1 passes action_location (and warns about overrides without it).
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location)
        for operation in self.operations:
            if not self.has_operation_permission(request, operation.name):
                actions.pop(operation.name, None)
        return actions

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST":
            known = {op.name for op in self.operations}
            for name in request.POST.getlist("action"):
                if name in known:
                    self.require(request, name)  # refuse, rather than "No action selected"
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_confirm"
        view = self.admin_site.admin_view(self.confirm_one)
        return [path("<path:object_id>/confirm/<str:name>/", view, name=name), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {"operation_tools": self.operation_tools(request, unquote(object_id))}
        return super().change_view(
            request, object_id, form_url, {**context, **(extra_context or {})}
        )

    def operation_tools(self, request, object_id) -> list[dict]:
        """Return the detail page's buttons: operations the user may run that apply to the row."""
        obj = self.get_object(request, object_id)  # None for a malformed or unknown id
        if obj is None:
            return []
        rows = self.model._default_manager.filter(pk=obj.pk)
        return [
            {"name": op.name, "verb": op.verb, "url": self.confirm_url(object_id, op.name)}
            for op in self.operations
            if op.perform
            and self.has_operation_permission(request, op.name)
            and rows.filter(op.actionable).exists()
        ]

    def confirm_one(self, request, object_id: str, name: str):
        """Ask to confirm an operation on one row (a button on its detail page)."""
        operation = next((op for op in self.operations if op.name == name and op.perform), None)
        if operation is None:
            raise Http404(f"no operation {name!r}")
        self.require(request, name)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"no {self.opts.verbose_name} {object_id}")
        preview = operations.preview(
            self.model._default_manager.filter(pk=obj.pk), operation.actionable
        )
        if not preview.count:
            self.message_user(
                request,
                f"This {self.opts.verbose_name} is not {operation.applies_to}.",
                messages.WARNING,
            )
            return HttpResponseRedirect(self.change_url(obj.pk))
        return self.confirmation(
            request, operation, preview, selected=[obj.pk], form_url=self.changelist_url()
        )

    def run_operation(self, request, queryset: QuerySet, name: str):
        """Show the confirmation page for ``name``; on the confirmed post, do it and log it."""
        self.require(request, name)
        operation = self.operation(name)
        if request.POST.get("post") == "yes":
            perform = operation.perform
            assert perform is not None, f"{name} has a page of its own"
            with transaction.atomic():
                outcome = perform(queryset)
                self.log_outcome(request, operation, outcome)
            self.report(request, operation, outcome)
            return None  # back to the change list
        preview = operations.preview(queryset, operation.actionable)
        if not preview.count:
            self.message_user(
                request,
                f"None of the {preview.skipped} selected {self.opts.verbose_name_plural} "
                f"is {operation.applies_to}: nothing to {operation.verb}.",
                messages.WARNING,
            )
            return None
        return self.confirmation(request, operation, preview)

    def confirmation(self, request, operation: Operation, preview, *, selected=None, form_url=""):
        """Render the page that asks the operator to confirm ``operation``.

        Its form posts the same selection back to the change list with
        ``post=yes``; ``selected`` defaults to the rows ticked there.
        """
        if selected is None:
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Confirm: {operation.verb} {self.opts.verbose_name_plural}",
            "opts": self.opts,
            "operation": operation,
            "preview": preview,
            "selected": selected,
            "select_across": request.POST.get("select_across") == "1",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "form_url": form_url,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/kew_django/confirm_operation.html", context)

    def log_outcome(self, request, operation: Operation, outcome: OperationResult) -> None:
        """Write a LogEntry for each changed row and each outbox row a requeue created.

        One bulk INSERT each, rather than ``log_change`` per row: a bulk
        action may touch thousands of rows.
        """
        entries = [
            _entry(request, row, CHANGE, operation.log_message(row)) for row in outcome.changed
        ]
        entries += [
            _entry(request, message, ADDITION, f"Requeued from dead letter {letter.pk}.")
            for letter, message in zip(outcome.changed, outcome.created, strict=False)
        ]
        LogEntry.objects.bulk_create(entries)

    def report(self, request, operation: Operation, outcome: OperationResult) -> None:
        count = len(outcome.changed)
        names = self.opts.verbose_name if count == 1 else self.opts.verbose_name_plural
        text = f"{operation.verb.capitalize()}: {count} {names}."
        if outcome.skipped:
            text += f" Skipped {outcome.skipped} that were not {operation.applies_to}."
        level = messages.SUCCESS if outcome.changed else messages.WARNING
        self.message_user(request, text, level)

    def changelist_url(self) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")

    def change_url(self, pk) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[pk])

    def confirm_url(self, pk, name: str) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_confirm", args=[pk, name]
        )


def _entry(request, row, flag: int, message: str) -> LogEntry:
    content_type = ContentType.objects.get_for_model(row, for_concrete_model=False)
    return LogEntry(
        user_id=request.user.pk,
        content_type=content_type,
        object_id=str(row.pk),
        object_repr=str(row)[:200],
        action_flag=flag,
        change_message=message,
    )


PREVIEW_BYTES = 64 * 1024  # longest payload shown in full on a detail page
HEX_BYTES = 512


def render_payload(payload: bytes | memoryview) -> str:
    """Return a payload as escaped HTML: indented JSON if it decodes, else text and hex."""
    data = bytes(payload)
    shown, rest = data[:PREVIEW_BYTES], len(data) - PREVIEW_BYTES
    note = f" … {rest} more bytes ({len(data)} in all)" if rest > 0 else ""
    try:
        text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, too deep, an integer past the digit limit
        pass
    else:
        return format_html('<pre class="kew-pre kew-json">{}</pre>', text)
    hexdump = "\n".join(
        f"{offset:08x}  {data[offset : offset + 16].hex(' ')}"
        for offset in range(0, min(len(data), HEX_BYTES), 16)
    )
    return format_html(
        '<p class="help">Not JSON ({} bytes). As text, with undecodable bytes escaped:</p>'
        '<pre class="kew-pre kew-text">{}{}</pre>'
        '<p class="help">First bytes in hex:</p><pre class="kew-pre kew-hex">{}</pre>',
        len(data),
        _escaped(shown),
        note,
        hexdump,
    )


def _escaped(data: bytes) -> str:
    """Return ``data`` as text, with undecodable bytes and control characters as escapes."""
    text = data.decode("utf-8", errors="backslashreplace")
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode() for c in text
    )


def render_text(text: str) -> str:
    """Return ``text`` escaped, in a <pre>."""
    return format_html('<pre class="kew-pre">{}</pre>', text) if text else "-"


def render_headers(headers: dict) -> str:
    """Return headers as escaped, indented JSON."""
    return render_text(json.dumps(headers or {}, indent=2, sort_keys=True, ensure_ascii=False))


def short_time(value: datetime | None) -> str:
    """Return ``value`` in the current time zone as "2026-03-04 12:30"."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "-"
