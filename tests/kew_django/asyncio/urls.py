"""A test URLconf: async views that write a business row and send a message in one transaction."""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from kew_django import Channel
from tests.kew_django.conftest import Job


class Refused(Exception):
    """Raised by the view after both writes: the transaction rolls back."""


async def write_both(queue: str, n: int) -> None:
    """Create the business row and send its message: both land on the transaction's thread."""
    await Group.objects.acreate(name=f"order-{n}")
    await Channel(queue, payload=Job).asend(Job(n))


def in_transaction(queue: str, n: int, fail: bool) -> None:
    """Run ``write_both`` inside ``transaction.atomic()``; raise after it when ``fail``."""
    with transaction.atomic():
        async_to_sync(write_both)(queue, n)
        if fail:
            raise Refused(f"order {n} refused after its writes")


@csrf_exempt
async def place_order(request: HttpRequest) -> HttpResponse:
    """Write an order and its message in one transaction; ``fail=1`` raises after both."""
    n = int(request.POST["n"])
    await sync_to_async(in_transaction)(request.POST["queue"], n, request.POST.get("fail") == "1")
    return HttpResponse(f"order {n}", status=201)


@csrf_exempt
async def send_only(request: HttpRequest) -> HttpResponse:
    """Send a message with no transaction: the row commits at once, as ``send`` in autocommit."""
    rows = await Channel(request.POST["queue"], payload=Job).asend_many([Job(1), Job(2)])
    return HttpResponse(str(len(rows)), status=201)


urlpatterns = [path("orders", place_order), path("send", send_only)]
