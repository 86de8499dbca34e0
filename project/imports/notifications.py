"""The outcome e-mail: one per import, with a Message-ID derived from the import id.

The e-mail is sent through Django's e-mail backend (``settings.EMAIL_*``).
Its Message-ID is the same however often it is sent, so a duplicate (a
consumer that died after the mail server accepted the e-mail but before
its transaction committed) is recognisable by any mail client or filter.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from project.imports.models import Import


def outcome_message_id(source: Import) -> str:
    """Return the stable Message-ID of ``source``'s outcome e-mail."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    return f"<import-{source.pk}.outcome@{domain}>"


def build_outcome_email(source: Import) -> EmailMessage:
    """Return the e-mail that tells ``source.email`` how the import ended."""
    context = {
        "import": source,
        "status_url": settings.IMPORT_SITE_URL.rstrip("/") + source.get_absolute_url(),
        "files": source.files.all()[:50],
    }
    subject = render_to_string("imports/email/outcome_subject.txt", context)
    return EmailMessage(
        subject=" ".join(subject.split()),
        body=render_to_string("imports/email/outcome_body.txt", context),
        to=[source.email],
        headers={
            "Message-ID": outcome_message_id(source),
            "X-Kew-Import-Id": str(source.pk),
            "X-Kew-Import-Status": source.status,
        },
    )


def send_outcome_email(source: Import) -> None:
    """Send the outcome e-mail; raise if the mail server does not take it."""
    build_outcome_email(source).send(fail_silently=False)
