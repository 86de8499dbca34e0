"""The error pages' settings filter: Django's, plus credentials in URLs masked."""

from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from project.redaction import redact_url_credentials


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Hide what Django hides (names like PASS, KEY, TOKEN) and the userinfo of any URL.

    Applies to settings (nested dicts and lists included), request.META
    (where ``runserver`` copies the environment) and frames' local variables.
    """

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return redact_url_credentials(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (name, redact_url_credentials(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
