"""A real Prometheus server for tests: scrape given targets every second, answer queries.

``PrometheusServer(["127.0.0.1:9101", ...]).start()`` writes a minimal
``prometheus.yml`` (``scrape_interval: 1s``, static targets) in a temporary
folder, runs Debian's ``prometheus`` binary on a free loopback port with
its storage in that folder, and waits for ``/-/ready``. ``query`` and
``wait_for`` read series back through the HTTP API; ``close`` stops the
server and removes the folder. It never uses the default port 9090, so a
system Prometheus (which Debian's package may start) does not interfere.

A missing binary raises ``ServiceUnavailable`` (the fixture then skips, or
fails in CI) saying what to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.harness.services import ServiceStartError, ServiceUnavailable, free_port, tail

INSTALL_HINT = "Debian's package: apt-get install prometheus"


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (``host:port`` of ``/metrics``)."""

    def __init__(self, targets: list[str], *, scrape_interval: str = "1s", binary: str = ""):
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.binary = binary or shutil.which("prometheus") or ""
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        """Return the prometheus.yml this server runs with."""
        targets = ", ".join(json.dumps(target) for target in self.targets)
        return (
            "global:\n"
            f"  scrape_interval: {self.scrape_interval}\n"
            f"  evaluation_interval: {self.scrape_interval}\n"
            "scrape_configs:\n"
            "  - job_name: kew\n"
            f"    scrape_timeout: {self.scrape_interval}\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Start the server and wait until it is ready; return self."""
        if not self.binary:
            raise ServiceUnavailable("Prometheus", INSTALL_HINT)
        self.folder = Path(tempfile.mkdtemp(prefix="kew-prometheus-"))
        (self.folder / "prometheus.yml").write_text(self.config())
        self.port = free_port()
        log = (self.folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"prometheus exited:\n{self.log_tail(30)}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.close()
        raise ServiceStartError(f"prometheus not ready after {timeout}s")

    def log_tail(self, lines: int = 60) -> str:
        """Return the end of the server's log."""
        if self.folder is None or not (self.folder / "prometheus.log").exists():
            return ""
        return tail((self.folder / "prometheus.log").read_text(errors="replace"), lines)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.load(answer)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body}")
        return body["data"]

    def query(self, promql: str) -> float | None:
        """Return the value of an instant query with one result (None when it has none)."""
        result = self.api("query", query=promql)["result"]
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{promql} has {len(result)} series; wrap it in sum()")
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, expected: float, timeout: float = 30.0) -> float | None:
        """Wait until ``promql`` answers ``expected``; return the last answer either way."""
        deadline = time.monotonic() + timeout
        value = self.query(promql)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            value = self.query(promql)
        return value

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
