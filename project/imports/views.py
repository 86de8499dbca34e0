"""HTTP views: request an import (JSON), watch its status and list imports (JSON or HTML).

``POST /imports/`` is a JSON API and is exempt from Django's CSRF check.
CSRF protects endpoints that act on a browser's cookies; this one uses no
cookie or session, and it only accepts ``Content-Type: application/json``,
which a cross-site HTML form cannot send and a cross-site script can only
send after a CORS preflight that this app never approves. A deployment
that adds cookie-based authentication must put the CSRF check back.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from project.imports.importer import get_importer, import_roots
from project.imports.messages import ImportRequest, import_requests
from project.imports.models import Import
from project.imports.validation import InvalidRequest, parse_import_request

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FILES_SHOWN = 500


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    """List imports, newest first (GET), or request a new one (POST)."""
    if request.method == "POST":
        return create_import(request)
    page = paginate(request, Import.objects.all())
    if wants_html(request):
        return render(request, "imports/list.html", {"page": page, "roots": import_roots()})
    return JsonResponse(
        {
            "count": page.paginator.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "next": page_url(request, page.next_page_number()) if page.has_next() else None,
            "previous": (
                page_url(request, page.previous_page_number()) if page.has_previous() else None
            ),
            "results": [summary(request, item) for item in page],
        }
    )


def create_import(request: HttpRequest) -> HttpResponse:
    """Store the Import and send its message in one transaction; answer 202."""
    if request.content_type != "application/json":
        return JsonResponse(
            {"error": "send the request as JSON with 'Content-Type: application/json'"},
            status=415,
        )
    try:
        spec = parse_import_request(request.body, roots=import_roots(), importer=get_importer())
    except InvalidRequest as invalid:
        return JsonResponse(invalid.as_json(), status=400)
    with transaction.atomic():
        item = Import.objects.create(
            requested_path=spec.requested_path,
            path=str(spec.path),
            root=str(spec.root),
            email=spec.email,
            options=spec.options,
        )
        import_requests.send(ImportRequest(import_id=str(item.pk)))
    status_url = request.build_absolute_uri(item.get_absolute_url())
    response = JsonResponse(
        {"id": str(item.pk), "status": item.status, "status_url": status_url}, status=202
    )
    response["Location"] = status_url
    return response


@require_http_methods(["GET", "HEAD"])
def import_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """Show one import's status, attempts and outcome."""
    item = get_object_or_404(Import, pk=pk)
    files = list(item.files.all()[:FILES_SHOWN])
    if wants_html(request):
        return render(request, "imports/detail.html", {"import": item, "files": files})
    body = summary(request, item)
    body["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]
    return JsonResponse(body)


def summary(request: HttpRequest, item: Import) -> dict[str, Any]:
    """Return the JSON form of one import."""
    return {
        "id": str(item.pk),
        "status_url": request.build_absolute_uri(item.get_absolute_url()),
        "path": item.requested_path,
        "resolved_path": item.path,
        "email": item.email,
        "options": item.options,
        "status": item.status,
        "attempts": item.attempts,
        "last_error": item.last_error or None,
        "error": item.error or None,
        "file_count": item.file_count,
        "total_bytes": item.total_bytes,
        "created_at": item.created_at,
        "finished_at": item.finished_at,
        "notified_at": item.notified_at,
    }


def wants_html(request: HttpRequest) -> bool:
    """Return whether to answer with HTML: ``?format=html``, or Accept prefers it to JSON."""
    chosen = request.GET.get("format")
    if chosen in ("html", "json"):
        return chosen == "html"
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def paginate(request: HttpRequest, queryset):
    """Return the requested page (``?page=``, ``?per_page=``), the last one if past the end."""
    try:
        size = min(max(int(request.GET.get("per_page", PAGE_SIZE)), 1), MAX_PAGE_SIZE)
    except ValueError:
        size = PAGE_SIZE
    paginator = Paginator(queryset, size)
    try:
        return paginator.page(request.GET.get("page", 1))
    except PageNotAnInteger:
        return paginator.page(1)
    except EmptyPage:
        return paginator.page(paginator.num_pages)


def page_url(request: HttpRequest, number: int) -> str:
    """Return the absolute URL of another page of the same listing."""
    query = request.GET.copy()
    query["page"] = str(number)
    return request.build_absolute_uri(f"{reverse('imports:list')}?{query.urlencode()}")
