"""A view that sends a message, for the tracing test's request."""

from django.http import HttpResponse
from django.urls import path

from kew_django import Channel
from tests.kew_django.conftest import Job


def send(request):
    Channel(request.GET["queue"], payload=Job).send(Job(int(request.GET["n"])))
    return HttpResponse("sent")


urlpatterns = [path("send", send)]
