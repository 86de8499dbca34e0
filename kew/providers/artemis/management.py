"""Ask Artemis's management API over STOMP: the broker's own account of a queue.

A request is a text message (no ``content-length``) to the management
address naming a resource (``queue.<name>``, ``broker``) and an operation
or attribute, its arguments a JSON array; the broker answers on the
caller's reply queue. The user needs Artemis's ``manage`` permission.

``stranded`` finds the deliveries Artemis (2.40 to 2.44) can lose when a
consumer's connection fails: they stay counted as in delivery but no
consumer holds them, so nobody receives them until the broker restarts
(its journal still has them). See ``docs/artemis.md``.
"""

from __future__ import annotations

import json
import queue as queues
import uuid
from typing import Any

import stomp.utils

from kew.errors import ProviderError
from kew.providers.artemis.config import ArtemisConfig
from kew.providers.artemis.connection import FailoverConnection
from kew.providers.artemis.topics import ANYCAST, queue_name
from kew.providers.artemis.wire import BrokerRefused, Wire, new_receipt

MANAGEMENT_ADDRESS = "activemq.management"  # the broker.xml default


class Management:
    """A connection that asks the broker's management API. Not thread-safe; one call at a time."""

    def __init__(self, config: ArtemisConfig, *, address: str = MANAGEMENT_ADDRESS):
        self.config = config
        self.address = address
        self._replies: queues.Queue[stomp.utils.Frame] = queues.Queue()
        self._connection = FailoverConnection(config, on_message=self._arrived)
        self._reply_queue = f"kew.management.{uuid.uuid4().hex}"
        try:
            self._subscribe()
        except BaseException:
            self._connection.close()
            raise

    def _arrived(self, wire: Wire, frame: stomp.utils.Frame) -> None:
        self._replies.put(frame)  # on stomp.py's I/O thread: never blocks

    def _subscribe(self) -> None:
        wire = self._connection.ensure()
        receipt = new_receipt()
        headers = {"subscription-type": ANYCAST, "receipt": receipt}
        wire.subscribe(self._reply_queue, "replies", headers)
        self._confirm(wire, receipt, "the subscription to the management reply queue")

    def _confirm(self, wire: Wire, receipt: str, what: str) -> None:
        try:
            wire.wait_receipt(receipt, self.config.receipt_timeout, what)
        except BrokerRefused as refused:
            raise ProviderError(
                f"Artemis refused {what}: {refused} (the user needs the manage permission)"
            ) from None

    def call(self, resource: str, operation: str, *args: object) -> Any:
        """Run ``operation`` on ``resource`` (e.g. ``queue.imports``); return its result."""
        return self._ask(resource, {"_AMQ_OperationName": operation}, list(args))

    def attribute(self, resource: str, name: str) -> Any:
        """Return attribute ``name`` of ``resource`` (e.g. ``DeliveringCount``)."""
        return self._ask(resource, {"_AMQ_Attribute": name}, [])

    def _ask(self, resource: str, what: dict[str, str], args: list[object]) -> Any:
        wire = self._connection.ensure()
        receipt = new_receipt()
        headers = {
            "_AMQ_ResourceName": resource,
            **what,
            "reply-to": self._reply_queue,
            "destination-type": ANYCAST,
            "receipt": receipt,
        }
        asked = f"{resource} {next(iter(what.values()))}"
        wire.send_text(self.address, json.dumps(args), headers)
        self._confirm(wire, receipt, f"the management request {asked}")
        try:
            frame = self._replies.get(timeout=self.config.receipt_timeout)
        except queues.Empty:
            self.close()  # a late answer must not be taken for the next one's
            raise ProviderError(f"Artemis did not answer the management request {asked}") from None
        wire.ack(frame.headers.get("ack") or frame.headers.get("message-id", ""))
        body = frame.body.decode() if isinstance(frame.body, bytes) else frame.body
        answer = json.loads(body or "[null]")
        if frame.headers.get("_AMQ_OperationSucceeded") != "true":
            raise ProviderError(f"Artemis management request {asked} failed: {answer[0]}")
        return answer[0]

    def close(self) -> None:
        """Disconnect; the reply queue is left to the broker's auto-delete."""
        self._connection.close()

    def __enter__(self) -> Management:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stranded(management: Management, queue: str) -> int:
    """Return how many deliveries of Kew queue ``queue`` the broker counts but no consumer holds.

    Read twice and the smaller count kept, as a delivery may start or
    end between reading the queue's count and its consumers'.
    """
    return min(_unheld(management, queue_name(queue)) for _ in range(2))


def _unheld(management: Management, name: str) -> int:
    consumers = json.loads(management.call("broker", "listAllConsumersAsJSON"))
    held = sum(int(c.get("deliveringCount", 0)) for c in consumers if c.get("queueName") == name)
    delivering = int(management.attribute(f"queue.{name}", "DeliveringCount"))
    return max(0, delivering - held)
