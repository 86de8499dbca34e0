"""Register the reference app's import consumer again, in one transaction (``atomic=True``).

The product runs imports as long work (``atomic=False``). bench/longwork.py
measures the web's latency in both modes, so its processes install this
app after ``project.imports``: the same handler registered again replaces
its spec, and ``run_import`` then runs without a ``Work``.
"""

from __future__ import annotations

from django.conf import settings

from kew_django import consumer
from project.imports.consumers import import_exhausted, run_import
from project.imports.messages import IMPORTS_QUEUE, ImportRequest

consumer(
    IMPORTS_QUEUE,
    payload=ImportRequest,
    retry=settings.IMPORT_RETRY,
    on_exhausted=import_exhausted,
    idempotent=True,
    prefetch=1,
    atomic=True,
)(run_import)
