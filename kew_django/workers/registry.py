"""Consumer declarations: the ``@consumer`` decorator and ``consumers``, the registry it fills."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from django.apps import apps

from kew.codecs import JsonCodec
from kew.message import Message
from kew.schedule import ExhaustedHandler, RepeatAction, RetrySpec, Schedule, as_schedule
from kew_django.conf import section
from kew_django.errors import KewImproperlyConfigured
from kew_django.limits.declared import KeyFunction, Limit
from kew_django.outbox.channel import Channel
from kew_django.workers.coroutines import is_coroutine_handler

Handler = Callable[..., "RepeatAction | None"]


@dataclass(frozen=True, eq=False)
class ConsumerSpec:
    """How one queue is consumed: its handler, payload type, retries and options."""

    queue: str
    handler: Handler
    payload: type | None = None
    retry: RetrySpec = None
    on_exhausted: ExhaustedHandler[Any] | None = None
    idempotent: bool = False
    prefetch: int = 1
    atomic: bool = True  # False: long work, run outside a transaction (``workers.long``)
    limit: int | str | Limit | None = None  # cluster-wide limits (``kew_django.limits``)
    key: KeyFunction | str | None = None  # the key of a message, for per-key limits

    @property
    def name(self) -> str:
        """Return the handler's dotted name, for logs and checks."""
        return f"{self.handler.__module__}.{self.handler.__qualname__}"

    @cached_property
    def schedule(self) -> Schedule:
        """Return the retry schedule; raises ConfigurationError on a bad interval."""
        return as_schedule(self.retry)

    @cached_property
    def codec(self) -> JsonCodec[Any]:
        """Return the codec that decodes this queue's payloads."""
        return JsonCodec(self.payload)

    # Hooks a subclass overrides for queues whose messages need more than their data
    # (the task queues: kew_django.tasks.worker).

    def call(self, message: Message[Any]) -> RepeatAction | None:
        """Call the handler (``atomic`` consumers) with the message's data."""
        return self.handler(message.data)

    def schedule_for(self, message: Message[Any]) -> Schedule:
        """Return the retry schedule of ``message``: the queue's."""
        return self.schedule


@dataclass(frozen=True)
class Problem:
    """A consumer declaration that cannot run, with its system-check id and hint."""

    id: str
    message: str
    hint: str
    spec: ConsumerSpec
    error: Exception | None = None


class ConsumerRegistry:
    """The consumers of one project, keyed by queue. One queue, one consumer."""

    def __init__(self) -> None:
        self._specs: dict[str, ConsumerSpec] = {}
        self.duplicates: list[tuple[ConsumerSpec, ConsumerSpec]] = []

    def register(self, spec: ConsumerSpec) -> ConsumerSpec:
        """Add ``spec``; a second consumer of the same queue is recorded as a duplicate.

        Registering the very same handler again (a module imported twice)
        replaces its spec: the last declaration wins. Duplicates are
        reported by the system check ``kew.E004`` and make ``validate`` raise.
        """
        known = self._specs.get(spec.queue)
        if known is not None and known.name != spec.name:
            self.duplicates.append((known, spec))
            return spec
        self._specs[spec.queue] = spec
        return spec

    def consumer(self, queue: str | Channel[Any], **options: Any) -> Callable[[Handler], Handler]:
        """Return a decorator that registers its function as the consumer of ``queue``.

        ``queue`` is a queue name or a ``Channel``, whose queue and payload
        type are then used (a ``payload=`` that disagrees is an error).
        """
        if isinstance(queue, Channel):
            payload = options.get("payload")
            if payload is not None and queue.payload is not None and payload is not queue.payload:
                raise KewImproperlyConfigured(
                    f"@consumer({queue!r}, payload={payload.__name__}): "
                    "the channel already names its payload type"
                )
            options["payload"] = payload or queue.payload
            queue = queue.queue

        def decorate(handler: Handler) -> Handler:
            spec = self.register(ConsumerSpec(queue, handler, **options))
            handler.kew_consumer = spec  # type: ignore[attr-defined]
            return handler

        return decorate

    def problems(self) -> list[Problem]:
        """Return what is wrong: a queue with two consumers, a retry schedule that does not parse.

        The one source of both ``validate`` and the system checks ``kew.E004``/``kew.E005``
        (and ``kew.E014``: an ``async def`` handler with ``atomic=False``).
        """
        found = [
            Problem(
                "kew.E004",
                f"queue {first.queue!r} has two consumers: {first.name} and {second.name}",
                "Each queue has exactly one @consumer; rename one queue or remove one handler.",
                second,
            )
            for first, second in self.duplicates
        ]
        found += [
            Problem(
                "kew.E014",
                f"consumer {spec.name} is an async def handler with atomic=False",
                "Long work runs its handler synchronously with a Work (progress, commit); "
                "make it a plain def, or drop atomic=False to await it in the transaction.",
                spec,
            )
            for spec in self
            if not spec.atomic and is_coroutine_handler(spec.handler)
        ]
        for spec in self:
            try:
                spec.schedule  # noqa: B018 - parses the retry intervals
            except Exception as error:
                found.append(
                    Problem(
                        "kew.E005",
                        f"consumer {spec.name}: {error}",
                        "Write intervals as a number and a unit, e.g. retry='10s 10s 2m 1d'.",
                        spec,
                        error,
                    )
                )
        return found

    def validate(self) -> None:
        """Raise KewImproperlyConfigured on a duplicate queue or a bad retry schedule."""
        problems = self.problems()
        if problems:
            raise KewImproperlyConfigured(problems[0].message) from problems[0].error

    def get(self, queue: str) -> ConsumerSpec:
        """Return the consumer of ``queue``; KeyError names the known queues."""
        try:
            return self._specs[queue]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise KeyError(f"no consumer for queue {queue!r} (registered: {known})") from None

    def clear(self) -> None:
        """Forget every consumer."""
        self._specs.clear()
        self.duplicates.clear()

    def __iter__(self) -> Iterator[ConsumerSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, queue: object) -> bool:
        return queue in self._specs


consumers = ConsumerRegistry()


DEFAULT_RETRY = object()  # KEW["CONSUMERS"]["RETRY"]: a finite schedule with back-off


def consumer(
    queue: str | Channel[Any],
    *,
    payload: type | None = None,
    retry: RetrySpec | object = DEFAULT_RETRY,
    on_exhausted: ExhaustedHandler[Any] | None = None,
    idempotent: bool = False,
    prefetch: int = 1,
    atomic: bool = True,
    limit: int | str | Limit | None = None,
    key: KeyFunction | str | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the consumer of ``queue``.

    ``queue`` is a ``Channel`` (``@consumer(thumbnails, retry="10s")``: its
    queue and payload type) or a queue name with ``payload=``. The handler
    gets the decoded data and runs in ``transaction.atomic()`` on a worker
    thread; the delivery is acked after it returns. Raising (or answering
    ``RepeatAction.RETRY``) retries it after each ``retry`` interval
    ("10s 10s 2m"; by default ``KEW["CONSUMERS"]["RETRY"]``, "10s 1m 10m";
    ``retry=None``: no retry); ``PermanentError`` skips the retries. When
    retries run out the message becomes a DeadLetter and
    ``on_exhausted(data, error)`` is called once. ``idempotent=True`` records each message id in the
    handler's transaction and skips messages already recorded. An ``async def``
    handler (or ``on_exhausted``) is awaited on the worker's event loop, in
    that same transaction; see ``kew_django.workers.coroutines``.

    ``atomic=False`` is for long work (minutes, hours): the handler is
    called as ``handler(data, work)`` outside any transaction, reports
    progress with ``work.progress(done, total, note)`` (which raises
    ``Cancelled`` once an operator asked it to stop) and commits its final
    writes in ``with work.commit():``, a short transaction that also
    records the message id; see ``kew_django.workers.long``.

    ``limit=N`` handles at most N messages of this queue at once across
    every process and host; ``limit=Limit(concurrency=, per_key=, rate=,
    key_rate=)`` with ``key=`` (a function of the data) limits per key and
    serves keys round-robin; ``limit="name"`` uses ``KEW["LIMITS"]["name"]``.
    A message that may not start waits, spending no attempt
    (``kew_django.limits``, docs/backpressure.md).
    """
    if not apps.is_installed("kew_django"):
        raise KewImproperlyConfigured("@consumer needs 'kew_django' in INSTALLED_APPS")
    if retry is DEFAULT_RETRY:
        retry = section("CONSUMERS").get("RETRY", "10s 1m 10m")
    return consumers.consumer(
        queue,
        payload=payload,
        retry=cast(RetrySpec, retry),
        on_exhausted=on_exhausted,
        idempotent=idempotent,
        prefetch=prefetch,
        atomic=atomic,
        limit=limit,
        key=key,
    )
