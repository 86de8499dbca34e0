"""Errors kew_django adds to Kew's exception tree."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from kew.errors import ConfigurationError, PermanentError

__all__ = ["KewImproperlyConfigured", "PermanentError"]


class KewImproperlyConfigured(ConfigurationError, ImproperlyConfigured):
    """The KEW setting or a consumer declaration is wrong; the message names what to fix."""
