"""Count crashed deliveries; give up on a message that keeps killing its worker.

A handler that kills its process (out of memory, a crash in native code,
an orchestrator's SIGKILL) never returns, so no retry rule runs and its
message comes back for ever. Each redelivered message is counted in a
``CrashCount`` row committed before its handler runs; past
``KEW["CONSUMERS"]["MAX_CRASHES"]`` it is given up through the normal path
(a dead letter, reason ``crashed``, and ``on_exhausted``). A delivery
handed back on purpose (a shutdown) is not counted. See docs/guarantees.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kew.errors import KewError
from kew.providers.base import Delivery
from kew.qchan.outcomes import DeliveryOutcome
from kew.schedule import GiveUp, GiveUpReason
from kew_django.models import CrashCount

log = logging.getLogger(__name__)


class CrashLoop(KewError):
    """A message whose handling ended without an outcome too many times."""


class CrashCounter:
    """The crash count of one queue's deliveries; ``through`` runs each database step."""

    def __init__(
        self, queue: str, using: str, limit: int, through: Callable[[Callable[[], Any]], Any]
    ):
        self.queue, self.using, self.limit = queue, using, limit
        self.through = through

    def screen(self, delivery: Delivery) -> GiveUp | None:
        """Count a redelivered delivery; return a give-up once it crashed past the limit."""
        if not delivery.redelivered or not delivery.message_id:
            return None
        message_id = delivery.message_id
        counts = CrashCount.objects.using(self.using)
        crashes = int(self.through(lambda: counts.started_again(self.queue, message_id)))
        if crashes <= self.limit:
            if crashes:
                log.warning(
                    "%s: message %s is back after its worker died (%d of at most %d)",
                    self.queue,
                    message_id,
                    crashes,
                    self.limit,
                )
            return None
        return GiveUp(
            GiveUpReason.CRASHED,
            CrashLoop(
                f"its handling ended without an outcome {crashes} times: each time the "
                "worker died (killed, out of memory, a crash in native code) before it "
                f"finished; KEW['CONSUMERS']['MAX_CRASHES'] is {self.limit}"
            ),
        )

    def ended(self, delivery: Delivery, outcome: Any) -> None:
        """Forget the count of a delivery that reached ``outcome``; note a release."""
        message_id = delivery.message_id
        if not message_id:
            return
        counts = CrashCount.objects.using(self.using)
        if outcome is DeliveryOutcome.RELEASED:
            self.through(lambda: counts.released(self.queue, message_id))
        elif delivery.redelivered:
            self.through(lambda: counts.ended(self.queue, message_id))
