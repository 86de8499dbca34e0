"""HTTP views: request an import (JSON), watch its status and list imports (JSON or HTML).

Every view needs an authenticated user: a session (the browser) or an API
token (``Authorization: Bearer <key>``; see ``auth``). Anonymous JSON
requests get 401, anonymous browsers the login page. Users see only their
own imports; staff see every one. The outcome e-mail goes to the
requester's own address, so the API cannot be used to mail anyone else.

``POST /imports/`` is exempt from Django's CSRF middleware because a token
request carries no cookie to forge; a session-authenticated POST is
checked here as the middleware would check it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from project.imports.admission import refusal
from project.imports.auth import BadToken, authenticate, csrf_failure
from project.imports.importer import get_importer, user_roots
from project.imports.messages import ImportRequest, import_requests
from project.imports.models import Import
from project.imports.outcomes import OutcomeAlreadyRecorded
from project.imports.progress import cancel, running_state
from project.imports.validation import InvalidRequest, clean_email, parse_import_request

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FILES_SHOWN = 500


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    """List the user's imports, newest first (GET), or request a new one (POST)."""
    refused = require_user(request)
    if refused is not None:
        return refused
    if request.method == "POST":
        return create_import(request)
    page = paginate(request, visible_imports(request))
    if wants_html(request):
        return render(request, "imports/list.html", {"page": page})
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


def require_user(request: HttpRequest) -> HttpResponse | None:
    """Return the answer to a request without a valid user (401, or the login page), else None.

    Sets ``request.user`` to the user of the token, when a token is sent.
    """
    try:
        request.user = authenticate(request)
    except BadToken as error:
        return unauthorized(str(error))
    if request.user.is_authenticated:
        return None
    if request.method in ("GET", "HEAD") and wants_html(request):
        return redirect_to_login(request.get_full_path())
    return unauthorized("log in, or send an API token as 'Authorization: Bearer <token>'")


def unauthorized(reason: str) -> JsonResponse:
    response = JsonResponse({"error": f"authentication required: {reason}"}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="kew imports"'
    return response


def visible_imports(request: HttpRequest) -> QuerySet[Import]:
    """Return the imports the user may see: their own, or every one for staff."""
    imports = Import.objects.all()
    return imports if request.user.is_staff else imports.filter(requester=cast(User, request.user))


def create_import(request: HttpRequest) -> HttpResponse:
    """Store the Import and send its message in one transaction; answer 202.

    Past the admission bounds (``admission``) answer 503 or 429 with ``Retry-After``.
    """
    failure = csrf_failure(request)
    if failure is not None:
        return JsonResponse({"error": failure}, status=403)
    if request.content_type != "application/json":
        return JsonResponse(
            {"error": "send the request as JSON with 'Content-Type: application/json'"},
            status=415,
        )
    user = cast(User, request.user)  # require_user let only an authenticated user through
    try:
        email = clean_email(user.email)
    except ValueError as error:
        body = {"error": f"your account's e-mail address {error}: the outcome is mailed there"}
        return JsonResponse(body, status=400)
    refused = refusal(user)  # before the (possibly slow) validation: the door stays cheap
    if refused is not None:
        return refused
    try:
        roots = existing(user_roots(user.get_username()))
        if not roots and settings.IMPORT_USER_FOLDERS:
            raise InvalidRequest(
                "you have no import folder yet",
                {"path": "an administrator makes your folder, <import root>/<your user name>"},
            )
        spec = parse_import_request(request.body, roots=roots, importer=get_importer())
    except InvalidRequest as invalid:
        return JsonResponse(invalid.as_json(), status=400)
    with transaction.atomic():
        item = Import.objects.create(
            requester=user,
            requested_path=spec.relative_path,
            path=str(spec.path),
            root=str(spec.root),
            email=email,
            options=spec.options,
        )
        row = import_requests.send(ImportRequest(import_id=str(item.pk)))
        Import.objects.filter(pk=item.pk).update(message_id=row.message_id)
    status_url = request.build_absolute_uri(item.get_absolute_url())
    response = JsonResponse(
        {"id": str(item.pk), "status": item.status, "status_url": status_url}, status=202
    )
    response["Location"] = status_url
    return response


def existing(roots: tuple[Path, ...]) -> tuple[Path, ...]:
    """Return the roots that exist, resolved (a user's folder may not have been made)."""
    return tuple(root.resolve() for root in roots if root.is_dir())


@require_http_methods(["GET", "HEAD"])
def import_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """Show one import's status, attempts and outcome (404 if it is not the user's)."""
    refused = require_user(request)
    if refused is not None:
        return refused
    item = visible_imports(request).filter(pk=pk).first()
    if item is None:
        raise Http404("no such import")
    files = list(item.files.all()[:FILES_SHOWN])
    if wants_html(request):
        context = {"import": item, "files": files, "run": running_state(item)}
        return render(request, "imports/detail.html", context)
    body = summary(request, item)
    body["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]
    return JsonResponse(body)


@csrf_exempt
@require_http_methods(["POST"])
def import_cancel(request: HttpRequest, pk: str) -> HttpResponse:
    """Ask an import to stop (``POST /imports/<id>/cancel``): 202 running, 200 cancelled, 409 done.

    CSRF-exempt and checked here, as ``POST /imports/`` is.
    """
    refused = require_user(request)
    if refused is not None:
        return refused
    failure = csrf_failure(request)
    if failure is not None:
        return JsonResponse({"error": failure}, status=403)
    item = visible_imports(request).filter(pk=pk).first()
    if item is None:
        raise Http404("no such import")
    try:
        status = cancel(item, by=request.user.get_username())
    except OutcomeAlreadyRecorded:
        item.refresh_from_db()
        body = {"error": f"the import has its outcome already: {item.status}"}
        return JsonResponse({**body, "status": item.status}, status=409)
    if wants_html(request):
        return HttpResponseRedirect(f"{item.get_absolute_url()}?format=html", status=303)
    answer = {"id": str(item.pk), "status": status, "cancel_requested": True}
    return JsonResponse(answer, status=202 if status == "running" else 200)


def summary(request: HttpRequest, item: Import) -> dict[str, Any]:
    """Return the JSON form of one import; ``status`` is ``running`` while a worker runs it."""
    run = running_state(item)
    return {
        "id": str(item.pk),
        "status_url": request.build_absolute_uri(item.get_absolute_url()),
        "path": item.requested_path,
        "email": item.email,
        "options": item.options,
        "status": run.status if run else item.status,
        "attempts": item.attempts,
        **(run.as_json() if run else {}),
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


def paginate(request: HttpRequest, queryset: QuerySet[Import]) -> Page:
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
