"""Background jobs of the imports app, as Django tasks (run through Kew, see docs/tasks.md)."""

from __future__ import annotations

from django.utils import timezone

from kew_django.tasks.compat import task
from project.imports.models import Import
from project.imports.notifications import send_outcome_email

MAINTENANCE_QUEUE = "import-maintenance"


@task(queue_name=MAINTENANCE_QUEUE, retry="10s 1m 5m 30m")
def resend_outcome_email(import_id: str) -> str:
    """Send a finished import's outcome e-mail again (an operator asked from the admin).

    The e-mail keeps its Message-ID, so a mail client shows a re-sent copy
    as the same message.
    """
    item = Import.objects.get(pk=import_id)
    send_outcome_email(item)
    Import.objects.filter(pk=item.pk).update(notified_at=timezone.now())
    return item.email
