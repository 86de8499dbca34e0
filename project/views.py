"""Project-level views: the welcome page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from project.imports.importer import import_roots


def welcome(request: HttpRequest) -> HttpResponse:
    """List the URLs of the reference application and how to try them."""
    return render(
        request,
        "welcome.html",
        {
            "imports_url": reverse("imports:list"),
            "admin_url": reverse("admin:index"),
            "base_url": request.build_absolute_uri("/").rstrip("/"),
            "roots": import_roots(),
        },
    )
