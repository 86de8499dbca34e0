"""The operators' admin: outbox, dead letters, processed messages and the dashboard.

- ``screens``: the ModelAdmins, registered on import (admin autodiscovery);
- ``actions``: operator actions with confirmation, permissions and audit log;
- ``forms``: edit-and-requeue, validated against the consumer's payload type;
- ``dashboard``: per-queue counts, relay lag and a 24-hour chart;
- ``in_progress``: what each worker runs now, with an action that asks a
  running message to stop;
- ``periodic``: the periodic jobs, their last and next firing, pause/resume;
- ``topics``: each topic's subscriptions, their depth and dead letters.

The operations themselves are plain functions in ``kew_django.operations``.
"""

from kew_django.admin.in_progress import InProgressAdmin
from kew_django.admin.limits import LimitSettingAdmin
from kew_django.admin.periodic import PeriodicJobAdmin
from kew_django.admin.screens import DeadLetterAdmin, OutboxMessageAdmin, ProcessedMessageAdmin
from kew_django.admin.topics import TopicSubscriptionAdmin

__all__ = [
    "DeadLetterAdmin",
    "InProgressAdmin",
    "LimitSettingAdmin",
    "OutboxMessageAdmin",
    "PeriodicJobAdmin",
    "ProcessedMessageAdmin",
    "TopicSubscriptionAdmin",
]
