"""Cluster-wide limits: concurrency, rate and per-key limits that make work wait, never fail.

``@consumer(queue, limit=2)`` or ``limit=Limit(...)`` with ``key=``; see
``declared`` (what a limit is, where its values come from), ``gate`` (the
worker's gate before the handler), ``parked`` (messages that step aside
for fairness), ``store`` (slots and rate clocks in the database) and
docs/backpressure.md.
"""

from __future__ import annotations

from kew_django.limits.declared import Limit

__all__ = ["Limit"]
