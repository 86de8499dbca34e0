"""Hide credentials in URLs (``artemis://kew:secret@broker``) on error pages and in logs.

Django's ``SafeExceptionReporterFilter`` hides settings whose *names*
look secret (PASS, KEY, TOKEN …), but not a password inside a URL such as
``KEW["PROVIDERS"]["default"]["URL"]`` or ``EMAIL_URL``. This module
redacts the userinfo of anything that looks like a URL. It imports no
Django, so ``bin/run-dev`` can use it too; the error pages' filter that
uses it is ``project.debug.RedactingExceptionReporterFilter``.
"""

from __future__ import annotations

import logging
import re

MASK = "********"
# scheme://user:password@ (the password runs to the last "@" of the URL, and may hold
# "@", "/" or "#") or scheme://token@ (no "/", "?", "#" or ":" before the "@").
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)"
    r"(?:(?P<user>[^/?#\s@:'\"<>]*):[^\s'\"<>]*|[^/?#\s@:'\"<>]+)@"
)


def redact_url_credentials(text: str) -> str:
    """Return ``text`` with each URL's password (or whole userinfo, if it has no user) masked.

    ``artemis://kew:secret@broker:61613`` becomes ``artemis://kew:********@broker:61613``;
    ``https://TOKEN@host/`` becomes ``https://********@host/``.
    """

    def mask(match: re.Match[str]) -> str:
        user = match["user"]
        userinfo = MASK if user is None else f"{user}:{MASK}"
        return f"{match['scheme']}{userinfo}@"

    return _URL_USERINFO.sub(mask, text)


class RedactingFormatter(logging.Formatter):
    """A logging formatter whose output (message and traceback) has URL credentials masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url_credentials(super().format(record))
