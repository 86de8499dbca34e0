"""The messages of the imports app: their payloads and the channels that carry them."""

from __future__ import annotations

from dataclasses import dataclass

from kew_django import Channel

IMPORTS_QUEUE = "imports"
OUTCOMES_QUEUE = "import-outcomes"


@dataclass(frozen=True)
class ImportRequest:
    """Run the import with this id (its Import row says what and where)."""

    import_id: str


@dataclass(frozen=True)
class OutcomeNotice:
    """Tell the requester how the import with this id ended."""

    import_id: str


import_requests: Channel[ImportRequest] = Channel(IMPORTS_QUEUE, payload=ImportRequest)
outcome_notices: Channel[OutcomeNotice] = Channel(OUTCOMES_QUEUE, payload=OutcomeNotice)
