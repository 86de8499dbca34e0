"""The relay a sending process publishes its own committed rows with (publishing on commit).

``apps`` hands ``sender_relay`` to ``kew_django.outbox.committed.commit_publishers``.
"""

from __future__ import annotations

from kew_django.conf import section
from kew_django.observability import tracing
from kew_django.observability.observer import NO_OBSERVER, Observer, Observers
from kew_django.outbox.committed import commit_publishers
from kew_django.providers import get_provider
from kew_django.relay.publisher import Relay
from kew_django.runner import relay_from_settings


def sender_relay(alias: str, using: str) -> Relay:
    """Return a one-thread relay to provider ``alias`` for database ``using``, as KEW["RELAY"] says.

    Its batches are observed as the relay's are: by the process's observer
    (metrics, traces) in a process that serves ``/metrics``, elsewhere by
    the relay's spans alone, linked to the senders' (when traced).
    """
    observer = commit_publishers.observer or _observer(alias)
    return relay_from_settings(provider=alias, using=using, threads=1, observer=observer)


def _observer(alias: str) -> Observer:
    if section("OBSERVABILITY").get("TRACING", True) and tracing.available():
        system = tracing.messaging_system(get_provider(alias))
        return Observers([tracing.Tracing(system=system)])
    return NO_OBSERVER
