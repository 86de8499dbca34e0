"""Admin screens for imports (what was requested, how it ended, what it found) and API tokens."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from project.imports.models import ApiToken, Import, ImportedFile

log = logging.getLogger(__name__)


class ImportedFileInline(admin.TabularInline):
    model = ImportedFile
    fields = ["path", "size", "sha256"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    max_num = 0


@admin.register(Import)
class ImportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "requester",
        "requested_path",
        "email",
        "status",
        "attempts",
        "file_count",
        "finished_at",
        "notified_at",
    ]
    list_filter = ["status", ("notified_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "requested_path", "path", "email"]
    date_hierarchy = "created_at"
    inlines = [ImportedFileInline]
    list_select_related = ["requester"]
    actions = ["resend_outcome_email"]
    readonly_fields = [
        "id",
        "requester",
        "requested_path",
        "path",
        "root",
        "email",
        "options",
        "status",
        "attempts",
        "last_error",
        "error",
        "file_count",
        "total_bytes",
        "created_at",
        "started_at",
        "finished_at",
        "notified_at",
    ]

    @admin.action(
        description="Re-send the outcome e-mail of the selected finished imports",
        permissions=["resend_outcome"],
    )
    def resend_outcome_email(self, request, queryset) -> None:
        from project.imports.tasks import resend_outcome_email

        finished = queryset.exclude(finished_at=None)
        with transaction.atomic():
            for item in finished:
                resend_outcome_email.enqueue(str(item.pk))
        self.message_user(request, f"{len(finished)} outcome e-mail(s) queued.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False  # imports are requested through POST /imports/, which sends the message

    def has_resend_outcome_permission(self, request: HttpRequest) -> bool:
        """Re-sending mails a user again: a permission of its own, not "change import"."""
        return request.user.has_perm("imports.resend_outcome_email")


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Create tokens (the key is shown once, on the page that follows) and revoke them."""

    form = ApiTokenForm
    list_display = ["name", "user", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "user__email"]
    readonly_fields = ["created_at", "last_used_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token is created or deleted, never edited

    def get_autocomplete_fields(self, request: HttpRequest) -> Any:
        return ["user"] if request.user.is_superuser else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Offer only the staff member themself: tokens for others are for superusers."""
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(pk=request.user.pk)
            kwargs["initial"] = request.user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if obj.user.pk != request.user.pk:  # a superuser's, as the form allows no other
            log.warning("API token %r made for user %s by %s", obj.name, obj.user, request.user)
        token, key = ApiToken.create(obj.user, obj.name)
        obj.pk, obj.digest, obj.created_at = token.pk, token.digest, token.created_at
        obj._state.adding = False
        request._kew_new_token_key = key  # type: ignore[attr-defined]  # shown by response_add

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Show the new key once, on this response (never stored, never in a message cookie)."""
        context = {
            **self.admin_site.each_context(request),
            "title": f"API token {obj.name} for {obj.user}",
            "opts": self.opts,
            "token": obj,
            "key": request._kew_new_token_key,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/imports/apitoken/created.html", context)
