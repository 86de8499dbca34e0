"""A mail server that accepts and then stalls holds no database lock: the web keeps answering.

On the embedded default (SQLite, one write lock for the whole database),
the outcome notifier talks to an SMTP server that accepts its connection
and then says nothing. Meanwhile new imports are requested and answered
202; once the mail server is released every import is told exactly once.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from project.imports.samples import create_sample
from tests.harness.e2e import (
    Process,
    SMTPServer,
    StallingProxy,
    WebServer,
    app_env,
    create_token,
    manage,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_requests_are_answered_while_the_outcome_mail_server_stalls(tmp_path: Path):
    root = tmp_path / "import-root"
    root.mkdir()
    names = [f"ok-{n}" for n in range(1, 5)]
    for name in names:
        create_sample(root, name)
    logs = tmp_path / "logs"
    logs.mkdir()
    with SMTPServer() as smtp, StallingProxy(smtp.port) as proxy:
        env = app_env(
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            EMAIL_URL=f"smtp://127.0.0.1:{proxy.port}",
            EMAIL_TIMEOUT="60",  # longer than the test: only the release ends the stall
            IMPORT_ROOTS=str(root),
            NOTIFY_RETRY="0.2s 0.5s 1s 1s 2s",
        )
        env.pop("KEW_BROKER_URL", None)
        manage(["migrate", "--noinput"], env)
        web = WebServer(env, logs, token=create_token(env))
        worker = Process("run", ["kew_run"], env, logs, ready="kew: started")
        processes = [web, worker]
        proxy.stalling.set()
        try:
            for process in processes:
                process.start()
            status, first = web.request("POST", "/imports/", {"path": names[0]})
            assert status == 202, first
            assert wait_until(lambda: proxy.holding() >= 1, 30), worker.tail()

            accepted = {first["id"]}
            for name in names[1:]:  # each a write transaction, while the notifier waits on SMTP
                status, body = web.request("POST", "/imports/", {"path": name})
                assert status == 202, body
                accepted.add(body["id"])
            assert proxy.holding() >= 1, "the mail server was released before the requests"

            proxy.release()

            def told() -> set[str]:
                return {r.import_id for r in smtp.handler.snapshot()}

            assert wait_until(lambda: told() >= accepted, 60), worker.tail()
            per_import = Counter(r.import_id for r in smtp.handler.snapshot())
            assert set(per_import) == accepted and set(per_import.values()) == {1}
        except BaseException:
            for process in processes:
                print(f"--- {process.name}\n{process.tail()}")
            raise
        finally:
            for process in processes:
                process.stop(signal.SIGTERM)
