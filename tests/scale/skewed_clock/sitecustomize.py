"""Shift this process's wall clock by ``KEW_CLOCK_SKEW`` seconds: a host whose clock is wrong.

Put this directory first on ``PYTHONPATH`` of a child process only: Python
imports ``sitecustomize`` at start-up, before Django and Kew, so their
``time.time()``, ``datetime.now()`` and ``django.utils.timezone.now()``
all read the shifted clock. ``time.monotonic()`` is left alone, as NTP
leaves it.
"""

import datetime
import os
import time

SKEW = float(os.environ.get("KEW_CLOCK_SKEW") or 0)

if SKEW:
    _time, _time_ns = time.time, time.time_ns
    _shift = datetime.timedelta(seconds=SKEW)

    class SkewedDatetime(datetime.datetime):
        """``datetime`` whose ``now`` and ``utcnow`` read the shifted clock."""

        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _shift

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _shift

    time.time = lambda: _time() + SKEW
    time.time_ns = lambda: _time_ns() + int(SKEW * 1e9)
    datetime.datetime = SkewedDatetime  # type: ignore[misc]
