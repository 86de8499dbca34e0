"""The queue engine: consume a queue, run its handler, ack; retry on a schedule; give up.

The one place where Kew's consume-and-retry rules live; ``kew_django``'s
``Worker`` fills in its hooks. Handlers run on the thread that calls
``poll``/``run``. A retry is sent before the original is acked (a crash
delivers twice, never zero times); NACK is never used. The steps and
their hooks: ``docs/core.md`` (the queue engine).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from kew.backoff import Backoff
from kew.channels import ChannelSink, DataSink, MessageSink
from kew.codecs import Codec, JsonCodec
from kew.errors import DecodeError, KewError, PermanentError, StorageUnavailable
from kew.message import Message
from kew.providers.base import Delivery, Provider, Receiver
from kew.providers.headers import delivery_count, message_from, retry_options
from kew.qchan.observe import NO_OBSERVER, EngineObserver, Handling
from kew.qchan.outcomes import AckMode, DeliveryOutcome, WorkerStats
from kew.qchan.producers import LazyProducer
from kew.schedule import (
    ExhaustedHandler,
    GiveUp,
    GiveUpReason,
    RepeatAction,
    RetrySpec,
    Schedule,
    after_failure,
    as_schedule,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

Handler = MessageSink[T] | ChannelSink[T] | Callable[[T], object]
RELEASE_PAUSE = 0.5  # seconds before the first redelivery of a released failure; doubles


class QueueSink(Generic[T]):
    """Consume one queue with ``handler``: the engine (see ``docs/core.md``).

    ``handler`` is a callable taking the data (it may answer
    ``RepeatAction.RETRY``), a ChannelSink or a MessageSink. ``retry`` is
    the schedule (``"10s 10s 2m"``, intervals or a ``Schedule``); a handler
    that raises or answers RETRY is retried on it, ``PermanentError`` is
    not. With ``retry=None`` (and consume-then-ack) a failure is not
    retried but left unacked for the provider to deliver again (RELEASED),
    after a pause that doubles with each failure in a row (0.5 s up to
    ``backoff_max``): never a loop without pause.
    Subclasses override the hooks ``decode``, ``screen``, ``run_handler``,
    ``schedule_for``, ``recover``, ``give_up`` and ``stopped``. One per thread.
    """

    def __init__(
        self,
        provider: Provider,
        queue: str,
        handler: Handler[T],
        *,
        codec: Codec[T] | None = None,
        retry: RetrySpec = None,
        on_exhausted: ExhaustedHandler[T] | None = None,
        ack_mode: AckMode = AckMode.CONSUME_THEN_ACK,
        prefetch: int = 1,
        poll_interval: float = 0.5,
        backoff_max: float = 30.0,
        stats: WorkerStats | None = None,
        observer: EngineObserver | None = None,
    ):
        self.provider = provider
        self.queue = queue
        self.sink: MessageSink[T] = (
            handler if isinstance(handler, MessageSink) else DataSink(handler)
        )
        self.codec: Codec[T] = codec or JsonCodec()
        self.schedule: Schedule = as_schedule(retry)
        self.releases_failures = retry is None and ack_mode is AckMode.CONSUME_THEN_ACK
        self.on_exhausted = on_exhausted
        self.ack_mode = ack_mode
        self.prefetch = prefetch
        self.poll_interval = poll_interval
        self.backoff_max = backoff_max
        self.stats = stats or WorkerStats()
        self.observer = observer or NO_OBSERVER  # metrics, traces, liveness (kew.qchan.observe)
        self._receiver: Receiver | None = None
        self._producers = LazyProducer(provider)
        self._releases = 0  # failures in a row left to the provider (retry=None)
        self._paused_until = 0.0

    # Hooks: override them to change how a step is done, not the rules.

    def decode(self, delivery: Delivery) -> T:
        """Decode the payload; raise DecodeError (with the raw bytes) if it cannot be."""
        return self.codec.decode(delivery.payload)

    def run_handler(self, message: Message[T]) -> DeliveryOutcome | None:
        """Run the handler; return HANDLED (or DUPLICATE), None if it answered RETRY."""
        answer = self.sink.consume_message(message)
        return None if answer is RepeatAction.RETRY else DeliveryOutcome.HANDLED

    def screen(self, delivery: Delivery, message: Message[T]) -> GiveUp | None:
        """Return a decision to give ``message`` up without running its handler, or None.

        Called before each handler run; a worker that counts crashed
        deliveries gives up here on one that keeps killing its process.
        """
        return None

    def schedule_for(self, message: Message[T]) -> Schedule:
        """Return the retry schedule of ``message``; by default the queue's (``retry``)."""
        return self.schedule

    def recover(self, error: BaseException) -> None:
        """Repair what a failure may have broken (a handler's, or the loop's own)."""

    def give_up(
        self,
        delivery: Delivery,
        message: Message[T] | None,
        reason: GiveUpReason,
        error: BaseException | None,
    ) -> None:
        """Set aside a message Kew gives up on; ``message`` is None if it was undecodable.

        By default, log it (with the raw bytes when undecodable) and call
        ``on_exhausted(data, error)`` once; an error there is logged. The
        engine acks the delivery after this returns, so raising here leaves
        it to come back.
        """
        if message is None:
            log.error(
                "%s: undecodable message %s dropped: %s; raw payload: %r",
                self.queue,
                delivery.message_id,
                error,
                delivery.payload[:1000],
            )
        elif self.on_exhausted is not None:
            try:
                self.on_exhausted(message.data, error)
            except Exception:
                log.exception("%s: on_exhausted failed for %s", self.queue, message.message_id)

    def stopped(self) -> None:
        """Release what the thread that ran ``run`` holds; called as ``run`` ends."""

    # The engine.

    def handle(self, delivery: Delivery) -> DeliveryOutcome:
        """Handle one delivery and acknowledge it; return what became of it.

        Raises, leaving the delivery unacked, only when a retry or a give-up
        cannot be stored, or a hook raised ``StorageUnavailable``.
        """
        if self.ack_mode is AckMode.ACK_THEN_CONSUME:
            delivery.ack()
        try:
            data = self.decode(delivery)
        except DecodeError as undecodable:
            return self._give_up(delivery, None, GiveUpReason.UNDECODABLE, undecodable)
        message = message_from(delivery, data)
        refused = self.screen(delivery, message)
        if refused is not None:
            return self._give_up(delivery, message, refused.reason, refused.error)
        error: BaseException | None = None
        started = time.monotonic()
        try:
            outcome = self.run_handler(message)
        except StorageUnavailable:  # not the handler's failure: the delivery count stays
            raise
        except Exception as failure:
            error, outcome = failure, None
            self.recover(failure)
        return self.settle(delivery, message, outcome, error, started=started)

    def settle(
        self,
        delivery: Delivery,
        message: Message[T],
        outcome: DeliveryOutcome | None,
        error: BaseException | None,
        *,
        started: float,
    ) -> DeliveryOutcome:
        """Ack a handled delivery (``outcome``), or take a failure's path: retry, release, give up.

        ``outcome`` None is a failure (``error``, or None if the handler
        answered RETRY); ``started`` is when the handler started (monotonic).
        """
        if outcome is not None:
            self._ack(delivery)
            log.debug(
                "%s: message %s (delivery %d) %s in %.1f ms",
                self.queue,
                message.message_id,
                message.delivery_count,
                outcome.value,
                (time.monotonic() - started) * 1000,
            )
            return outcome
        if self.releases_failures and not isinstance(error, PermanentError):
            return self._release(message, error)
        schedule = self.schedule_for(message)
        decision = after_failure(schedule, message, error)
        if isinstance(decision, GiveUp):
            return self._give_up(delivery, message, decision.reason, decision.error)
        self._retry(delivery, message, decision.delay)
        log.warning(
            "%s: message %s failed (delivery %d of %d), retry in %ss: %s",
            self.queue,
            message.message_id,
            message.delivery_count,
            schedule.max_deliveries,
            decision.delay.total_seconds(),
            error if error is not None else "handler answered RETRY",
        )
        return DeliveryOutcome.RETRIED

    def _release(self, message: Message[T], error: BaseException | None) -> DeliveryOutcome:
        """Leave the delivery unacked and reopen the receiver: the provider delivers it again."""
        log.error(
            "%s: message %s failed; left for the provider to deliver again: %s",
            self.queue,
            message.message_id,
            error if error is not None else "handler answered RETRY",
            exc_info=error,
        )
        self._close_receiver()
        self._releases += 1  # wait longer each time before taking deliveries again
        pause = min(self.backoff_max, RELEASE_PAUSE * 2 ** (self._releases - 1))
        self._paused_until = time.monotonic() + pause
        return DeliveryOutcome.RELEASED

    def _retry(self, delivery: Delivery, message: Message[T], delay: timedelta) -> None:
        """Send the next delivery of ``message``, then acknowledge this one."""
        options = retry_options(delivery, message, delay)
        try:
            self._producers.get().send(self.queue, delivery.payload, options)
        except KewError:
            self._producers.drop()
            raise
        self._ack(delivery)

    def _give_up(
        self,
        delivery: Delivery,
        message: Message[T] | None,
        reason: GiveUpReason,
        error: BaseException | None,
    ) -> DeliveryOutcome:
        self.give_up(delivery, message, reason, error)
        self._ack(delivery)
        log.error(
            "%s: gave up on message %s (%s) after %d delivery(ies): %s",
            self.queue,
            (message.origin_id if message else None) or delivery.message_id,
            reason.value,
            message.delivery_count if message else delivery_count(delivery),
            error,
        )
        return DeliveryOutcome.DEAD

    def ack_many(self, deliveries: list[Delivery]) -> None:
        """Acknowledge handled deliveries together (``Receiver.ack_many``), as ``settle`` would."""
        if self.ack_mode is not AckMode.CONSUME_THEN_ACK:
            return
        if self._receiver is None:
            for delivery in deliveries:
                delivery.ack()
        else:
            self._receiver.ack_many(deliveries)

    def _ack(self, delivery: Delivery) -> None:
        if self.ack_mode is AckMode.CONSUME_THEN_ACK:
            delivery.ack()

    # The loop.

    def poll(self, timeout: float | None = None) -> bool:
        """Handle at most one delivery, waiting up to ``timeout``; return whether one came."""
        self.observer.turned(self.queue)
        paused = self._paused_until - time.monotonic()
        if paused > 0:  # after a release: the provider delivers it again after a pause
            time.sleep(paused if timeout is None else min(paused, timeout))
            return False
        if self._receiver is None:
            self._receiver = self.provider.receiver(self.queue, prefetch=self.prefetch)
        delivery = self._receiver.receive(timeout)
        if delivery is None:
            return False
        self.dispatch(delivery)
        return True

    def dispatch(self, delivery: Delivery) -> None:
        """Handle a received delivery, observed and counted; a subclass may batch it with more.

        More deliveries come from ``held``; each is counted with ``counted``.
        """
        seen = Handling(self.queue, delivery)
        with self.observer.handling(seen):
            seen.outcome = self.handle(delivery)
        self.counted(seen.outcome)

    def held(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` more deliveries the receiver holds already, without waiting."""
        return [] if self._receiver is None else self._receiver.receive_ready(limit)

    def counted(self, outcome: DeliveryOutcome) -> None:
        """Count what became of one delivery (``stats``, and the pause after releases)."""
        if outcome is not DeliveryOutcome.RELEASED:
            self._releases = 0
        self.stats.add(outcome)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the delivery in hand is finished and acked first.

        A provider or storage error backs off, reopens the receiver, and the
        unacked delivery comes back with its delivery count unchanged.
        """
        backoff = Backoff(self.backoff_max, what=f"queue {self.queue!r}", logger=log)
        try:
            while not stop.is_set():
                try:
                    self.poll(self.poll_interval)
                    backoff.succeeded()
                except Exception as error:  # noqa: BLE001 - the loop outlives any one message
                    backoff.failed(error)
                    log.debug("%s: worker error", self.queue, exc_info=True)
                    self.close()
                    self.recover(error)
                    stop.wait(backoff.delay())
        finally:
            self.close()
            self.stopped()

    def close(self) -> None:
        """Close the receiver and the producer; unacked deliveries come back."""
        self._close_receiver()
        self._producers.drop()

    def _close_receiver(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            try:
                receiver.close()
            except Exception:  # noqa: BLE001 - a broken receiver may fail to close
                log.debug("closing a receiver failed", exc_info=True)
