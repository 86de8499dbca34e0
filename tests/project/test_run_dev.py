"""bin/run-dev, the one-command run: it sets everything up, serves, works, and stops on Ctrl-C."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.harness.e2e import BASE, WebServer, app_env, wait_until
from tests.harness.services import free_port, port_is_free


def load_run_dev():
    """Import bin/run-dev (a script without .py) as a module."""
    loader = importlib.machinery.SourceFileLoader("run_dev", str(BASE / "bin" / "run-dev"))
    spec = importlib.util.spec_from_loader("run_dev", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_banner_masks_the_mail_password_and_shows_the_token(monkeypatch):
    monkeypatch.setenv("EMAIL_URL", "smtp+tls://mailer:hunter2@mail.example.org:587")
    text = load_run_dev().banner("127.0.0.1:8000", "kew_abc")
    assert "hunter2" not in text
    assert "smtp+tls://mailer:********@mail.example.org:587" in text
    assert "Authorization: Bearer kew_abc" in text
    assert '"email"' not in text
    assert "YOUR-TOKEN" in load_run_dev().banner("127.0.0.1:8000", None)


@pytest.mark.slow
def test_run_dev_serves_imports_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = app_env(
        DJANGO_SETTINGS_MODULE="project.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        IMPORT_ROOTS=str(tmp_path / "import-root"),
        IMPORT_USER_FOLDERS="true",  # make run's default: the demo user imports from its folder
        EMAIL_URL=f"filemail:///{tmp_path / 'mail'}",  # environ drops one leading slash
    )
    log = tmp_path / "run-dev.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(BASE / "bin" / "run-dev"), f"127.0.0.1:{port}"],
            cwd=BASE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: "Press Ctrl-C" in log.read_text(), 60), log.read_text()
        assert (tmp_path / "import-root" / "demo" / "sample" / "README.txt").is_file()
        web = WebServer.__new__(WebServer)  # a client for the server run-dev started
        web.port = port
        web.token = re.search(r"Bearer (kew_[\w-]+)", log.read_text())[1]
        assert wait_until(lambda: not port_is_free(port), 30), log.read_text()
        assert web.request("GET", "/imports/")[0] == 200
        status, body = web.request("POST", "/imports/", {"path": "sample"})
        assert status == 202, body
        path = body["status_url"].removeprefix(f"http://127.0.0.1:{port}")

        def told() -> bool:
            return web.request("GET", path)[1]["notified_at"] is not None

        assert wait_until(told, 30), log.read_text()
        result = web.request("GET", path)[1]
        assert (result["status"], result["file_count"]) == ("succeeded", 5)
        (mail,) = (tmp_path / "mail").iterdir()
        assert "Subject: Import succeeded: sample" in mail.read_text()
        assert "To: demo@localhost" in mail.read_text()

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(30) == 0, log.read_text()
        time.sleep(0.5)
        assert port_is_free(port), "the web server outlived run-dev"
        assert "kew: stopped" in log.read_text(), "kew_run did not stop cleanly"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
