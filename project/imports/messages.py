"""The messages of the imports app: their payloads and the channels and topic that carry them."""

from __future__ import annotations

from dataclasses import dataclass

from kew_django import Channel, Topic

IMPORTS_QUEUE = "imports"
OUTCOMES_TOPIC = "import-outcomes"  # every outcome is published here; each subscriber reacts


@dataclass(frozen=True)
class ImportRequest:
    """Run the import with this id (its Import row says what and where)."""

    import_id: str


@dataclass(frozen=True)
class OutcomeNotice:
    """Tell the requester how the import with this id ended."""

    import_id: str


import_requests: Channel[ImportRequest] = Channel(IMPORTS_QUEUE, payload=ImportRequest)
import_outcomes: Topic[OutcomeNotice] = Topic(OUTCOMES_TOPIC, payload=OutcomeNotice)
OUTCOMES_QUEUE = import_outcomes.subscription("email")  # the outcome e-mail's subscription
AUDIT_QUEUE = import_outcomes.subscription("audit")  # the audit log's subscription
