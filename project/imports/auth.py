"""Who is asking: a session (the browser) or a per-user API token (scripts, curl).

A token is sent as ``Authorization: Bearer <key>`` and authenticates that
request alone; no cookie is involved, so token requests need no CSRF
token. A request authenticated by its session cookie does: its POST is
checked as Django's CSRF middleware would check it.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from project.imports.models import ApiToken, token_digest

SCHEMES = ("bearer", "token")


class BadToken(Exception):
    """The request carries a token that is malformed, unknown or belongs to an inactive user."""


def authenticate(request: HttpRequest) -> User | AnonymousUser:
    """Return the user of a valid token, else the session's user (perhaps anonymous).

    Raise BadToken if an Authorization header is present but not valid:
    a wrong token is refused rather than quietly treated as anonymous.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return request.user
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() not in SCHEMES or not key or len(key) > 200:
        raise BadToken("send the token as 'Authorization: Bearer <token>'")
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
    if token is None or not token.user.is_active:
        raise BadToken("the token is not valid")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    request.csrf_processing_done = True  # type: ignore[attr-defined]  # no cookie: no CSRF
    return token.user


def csrf_failure(request: HttpRequest) -> str | None:
    """Return why a session-authenticated POST fails the CSRF check, or None if it passes."""
    if getattr(request, "csrf_processing_done", False):
        return None
    check = CsrfViewMiddleware(_not_called)
    check.process_request(request)
    refused = check.process_view(request, _not_called, (), {})
    return None if refused is None else "CSRF check failed: send the X-CSRFToken header"


def _not_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the CSRF check does not call the view")
