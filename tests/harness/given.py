"""What every server given by a ``KEW_TEST_*_URL`` shares: used as is, never controlled."""

from __future__ import annotations

import os
from urllib.parse import SplitResult, urlsplit

from tests.harness.services import ServiceStartError, service_unsupported

__all__ = ["GivenByUrl"]


class GivenByUrl:
    """Mixin, first in the bases of a server class: the server of ``$<env_var>``.

    :meth:`stop` and :meth:`kill` (hence ``restart``) skip the calling test,
    counted by the run's summary as a guarantee left untested; :meth:`close`
    leaves the server alone. A subclass sets ``env_var`` and writes ``_start``
    with :meth:`given_url`, ending with ``self._external_url = url``.
    """

    mode = "url"
    controllable = False
    env_var = ""

    _external_url: str | None = None

    @property
    def url(self) -> str:
        """The URL exactly as given in the environment."""
        return self._external_url or super().url  # type: ignore[misc]

    def is_running(self) -> bool:
        """True once ``start`` found the server answering."""
        return self._external_url is not None

    def stop(self, timeout: float = 30.0) -> None:
        service_unsupported(f"cannot stop the external server given by {self.env_var}")

    def kill(self) -> None:
        service_unsupported(f"cannot kill the external server given by {self.env_var}")

    def log_tail(self, n: int = 50) -> str:
        return ""

    def given_url(self, scheme: str, example: str) -> tuple[str, SplitResult]:
        """Return ``$<env_var>`` and its parts; ServiceStartError unless it is ``scheme://host…``."""
        url = os.environ.get(self.env_var, "")
        parts = urlsplit(url)
        if parts.scheme != scheme or not parts.hostname:
            raise ServiceStartError(
                f"{self.env_var} must look like {example}, got {parts.scheme}://…"
            )
        return url, parts

    def _close(self, graceful: bool) -> None:
        self._external_url = None
