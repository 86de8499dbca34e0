"""The web process's metrics view: the database gauges, for the embedded case.

Route it yourself, e.g. ``path("kew/metrics", kew_django.observability.views.metrics)``.
It serves what the database knows (outbox backlog and oldest pending
row, FAILED rows, dead letters, the database provider's queue depth) and
this process's admissions refused (``admission.refusals``) in
Prometheus's text format, to an active staff user or to a request with
``Authorization: Bearer <KEW["OBSERVABILITY"]["TOKEN"]>``; anyone else
gets 403. Without ``prometheus_client`` it answers 501 saying so.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from kew_django.conf import section
from kew_django.observability import metrics_available
from kew_django.observability.admission import refusals


def _allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = str(section("OBSERVABILITY").get("TOKEN") or "")
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Answer the database gauges to staff or the token's bearer."""
    if not _allowed(request):
        return HttpResponse(
            "staff or a bearer token (KEW['OBSERVABILITY']['TOKEN']) only\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    if not metrics_available():
        return HttpResponse(
            "metrics need prometheus_client: pip install 'kew[metrics]'\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    # needs prometheus_client
    from kew_django.observability.metrics import DatabaseCollector, RefusalCollector

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(close=False))
    registry.register(RefusalCollector(refusals))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
