"""Admin screens for imports: what was requested, how it ended, what it found."""

from django.contrib import admin, messages
from django.db import transaction

from project.imports.models import Import, ImportedFile


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
    actions = ["resend_outcome_email"]
    readonly_fields = [
        "id",
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

    @admin.action(description="Re-send the outcome e-mail of the selected finished imports")
    def resend_outcome_email(self, request, queryset) -> None:
        from project.imports.tasks import resend_outcome_email

        finished = queryset.exclude(finished_at=None)
        with transaction.atomic():
            for item in finished:
                resend_outcome_email.enqueue(str(item.pk))
        self.message_user(request, f"{len(finished)} outcome e-mail(s) queued.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False  # imports are requested through POST /imports/, which sends the message
