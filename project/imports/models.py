"""Imports and the files they brought in.

An Import is accepted ``pending`` and ends in exactly one outcome,
``succeeded``, ``failed`` or ``cancelled`` (written by ``outcomes``). While
a worker runs it, its progress is kew_django's ``InProgress`` row of its
message (``message_id``), and the status page shows it as ``running``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse


class Import(models.Model):
    """One requested import: where from, whom to tell, and how it ended."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="imports",
        help_text="Who asked for it (the only user besides staff who sees it).",
    )
    path = models.CharField(max_length=4096, help_text="Resolved absolute path of the source.")
    requested_path = models.CharField(
        max_length=4096, help_text="The path relative to its root, normalised: shown and mailed."
    )
    root = models.CharField(max_length=4096, help_text="The import root the path lies in.")
    email = models.EmailField(help_text="Who is told the outcome: the requester's address.")
    options = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(
        max_length=64, blank=True, help_text="The id of its message on the imports queue."
    )
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs of the importer so far.")
    last_error = models.TextField(blank=True, help_text="The latest failed attempt's error.")
    error = models.TextField(blank=True, help_text="Why the import failed (its outcome).")
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the outcome e-mail was handed to the mail server."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("resend_outcome_email", "Can re-send the outcome e-mail")]
        constraints = [
            models.CheckConstraint(
                name="imports_import_outcome_has_finish_time",
                condition=(
                    models.Q(status="pending", finished_at__isnull=True)
                    | (~models.Q(status="pending") & models.Q(finished_at__isnull=False))
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.id} of {self.requested_path} ({self.status})"

    @property
    def finished(self) -> bool:
        """Return whether the import has its outcome."""
        return self.status != self.Status.PENDING

    def get_absolute_url(self) -> str:
        return reverse("imports:detail", kwargs={"pk": self.pk})


class ImportedFile(models.Model):
    """A regular file found by an import, with its size and SHA-256 checksum."""

    source = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=4096, help_text="Relative to the import's path.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["source", "path"]

    def __str__(self) -> str:
        return self.path


class AuditEntry(models.Model):
    """How an import ended, as the audit log's subscriber to the outcomes topic recorded it."""

    source = models.OneToOneField(Import, on_delete=models.CASCADE, related_name="audit")
    status = models.CharField(max_length=16, choices=Import.Status.choices)
    file_count = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.source_id} {self.status}"


def token_digest(key: str) -> str:
    """Return the SHA-256 hex digest under which an API token is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A per-user token for the JSON API (``Authorization: Bearer <key>``).

    Only the key's SHA-256 digest is stored: the key itself is shown once,
    when the token is created (in the admin or by ``manage.py
    create_api_token``), and cannot be read back.
    """

    PREFIX = "kew_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'laptop'.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["user", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="imports_apitoken_user_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @classmethod
    def create(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token for ``user``; return it and its key (the only time it is known)."""
        key = cls.PREFIX + secrets.token_urlsafe(32)
        return cls.objects.create(user=user, name=name, digest=token_digest(key)), key
