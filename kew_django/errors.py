"""Errors kew_django adds to Kew's exception tree."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from kew.errors import ConfigurationError, KewError, PermanentError

__all__ = ["CannotJoinTransaction", "KewImproperlyConfigured", "PermanentError"]


class KewImproperlyConfigured(ConfigurationError, ImproperlyConfigured):
    """The KEW setting or a consumer declaration is wrong; the message names what to fix."""


class CannotJoinTransaction(KewError):
    """``asend`` ran where it cannot join the caller's open transaction; nothing was written."""
