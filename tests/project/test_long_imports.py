"""Long imports on real processes: the web keeps answering, crashes recover, runs never overlap.

The scripted importer's ``long-S`` imports wait S seconds before each of
the sample's 5 files (reporting progress meanwhile) and record each run,
and any run that overlapped another live one, in files beside the data.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from project.imports.messages import AUDIT_QUEUE, OUTCOMES_QUEUE
from project.imports.samples import create_sample
from tests.harness.e2e import (
    Process,
    SMTPServer,
    WebServer,
    app_env,
    create_token,
    manage,
    wait_until,
)

pytestmark = pytest.mark.slow


def start_app(tmp_path: Path, smtp: SMTPServer, names: list[str], **env_overrides: str):
    root = tmp_path / "import-root"
    root.mkdir()
    for name in names:
        create_sample(root, name)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = app_env(
        EMAIL_URL=smtp.url,
        IMPORT_ROOTS=str(root),
        IMPORT_IMPORTER="project.imports.testing.ScriptedImporter",
        KEW_LOG_LEVEL="INFO",
        **env_overrides,
    )
    manage(["migrate", "--noinput"], env)
    return root, logs, env


def runs(root: Path, name: str) -> list[int]:
    """Return the pids of the runs of import ``name`` so far."""
    path = root / f"{name}.runs"
    return [int(line.split()[0]) for line in path.read_text().splitlines()] if path.exists() else []


def emails_for(smtp: SMTPServer, import_id: str) -> list[str]:
    return [r.status for r in smtp.handler.snapshot() if r.import_id == import_id]


def stop_all(processes: list[Process]) -> None:
    for process in processes:
        process.stop(signal.SIGTERM)


def print_logs(processes: list[Process]) -> None:
    for process in processes:
        print(f"----- {process.name} (whole log: {process.log_path})")
        print(process.tail(60))


@pytest.mark.one_leg(1)
def test_on_the_embedded_default_the_web_answers_at_once_while_a_60_s_import_runs(tmp_path):
    """``make run``'s settings (SQLite, database://, 30 s lease): kew_run and runserver."""
    others = [f"ok-{n}" for n in range(20)]
    with SMTPServer() as smtp:
        root, logs, env = start_app(
            tmp_path,
            smtp,
            ["long-12", *others],
            DJANGO_SETTINGS_MODULE="project.settings",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        )
        env.pop("KEW_BROKER_URL", None)
        web = WebServer(env, logs, token=create_token(env))
        kew = Process("kew_run", ["kew_run"], env, logs, ready="kew: started")
        processes = [web, kew]
        try:
            for process in processes:
                process.start()
            started = time.monotonic()
            status, body = web.request("POST", "/imports/", {"path": "long-12"})
            assert status == 202, body
            long_id = body["id"]
            detail = f"/imports/{long_id}/"
            assert wait_until(lambda: web.request("GET", detail)[1]["status"] == "running", 15)
            timings = []
            for name in others:
                begun = time.monotonic()
                status, body = web.request("POST", "/imports/", {"path": name})
                timings.append((status, time.monotonic() - begun))
            assert [s for s, _ in timings] == [202] * 20, timings
            assert max(t for _, t in timings) < 1.0, timings

            def percent() -> float | None:
                body = web.request("GET", detail)[1]
                assert body["status"] == "running", body
                return body["progress"]["percent"]

            assert wait_until(lambda: percent() is not None, 10), "no progress shown"
            first = percent()
            assert wait_until(lambda: (percent() or 0) > (first or 0), 20), "progress not rising"
            second = web.request("GET", detail)[1]
            assert second["progress"]["total"] > 0 and second["run_attempt"] == 1, second
            assert "file " in second["progress"]["note"]
            html = urllib.request.Request(
                web.url(detail) + "?format=html", headers={"Authorization": f"Bearer {web.token}"}
            )
            with urllib.request.urlopen(html, timeout=10) as page:
                assert b"<progress" in page.read()
            assert wait_until(lambda: emails_for(smtp, long_id), 90), "the long import never ended"
            assert time.monotonic() - started >= 60
            final = web.request("GET", detail)[1]
            assert final["status"] == "succeeded" and final["file_count"] == 5, final
            assert wait_until(lambda: len(smtp.handler.snapshot()) == 21, 30)
            time.sleep(1.0)
            assert emails_for(smtp, long_id) == ["succeeded"]
            assert len(runs(root, "long-12")) == 1
        except BaseException:
            print_logs(processes)
            raise
        finally:
            stop_all(processes)


def crash_overlap_and_cancel(
    tmp_path: Path,
    *,
    database_url: str,
    broker_url: str,
    lease: float,
    probe: Callable[[], str] = str,
    remedy: Callable[[int], bool] | None = None,
):
    """Two import workers: SIGKILL the one running a long import; then cancel another one.

    The killed import must run again within ``lease`` + 5 s. If it does
    not, ``remedy`` is given the one missing delivery; if it restarts the
    broker for it (True), the same bound runs from the restart. ``probe``
    describes the broker's state if it still does not (while every
    process runs).
    """
    bound = lease + 5
    with SMTPServer() as smtp:
        root, logs, env = start_app(
            tmp_path,
            smtp,
            ["long-4", "long-2"],
            DATABASE_URL=database_url,
            KEW_BROKER_URL=broker_url,
        )
        web = WebServer(env, logs, token=create_token(env))
        relay = Process("relay", ["kew_relay"], env, logs, ready="relay: started")
        workers = {
            name: Process(name, ["kew_consume", "imports"], env, logs, ready="kew: started")
            for name in ("imports-a", "imports-b")
        }
        notifier = Process(
            "notifier",
            ["kew_consume", OUTCOMES_QUEUE, AUDIT_QUEUE],
            env,
            logs,
            ready="kew: started",
        )
        processes = [web, relay, *workers.values(), notifier]
        try:
            for process in processes:
                process.start()
            status, body = web.request("POST", "/imports/", {"path": "long-4"})  # 20 s a run
            assert status == 202, body
            long_id = body["id"]
            assert wait_until(lambda: runs(root, "long-4"), 20), "the import did not start"
            (holder_pid,) = runs(root, "long-4")
            holder = next(p for p in workers.values() if p.popen and p.popen.pid == holder_pid)
            time.sleep(3 * lease + 1)  # three leases and more: renewed, never taken over
            assert runs(root, "long-4") == [holder_pid]
            holder.stop(signal.SIGKILL)
            killed = time.monotonic()
            again = wait_until(lambda: len(runs(root, "long-4")) == 2, bound + 5, 0.05)
            if not again and remedy is not None and remedy(1):
                killed = time.monotonic()  # the broker is back: the bound runs from here
                again = wait_until(lambda: len(runs(root, "long-4")) == 2, bound + 5, 0.05)
            assert again, f"the killed worker's import did not run again; broker: {probe()}"
            recovery = time.monotonic() - killed
            print(f"recovery after SIGKILL: {recovery:.1f}s (lease {lease}s)")
            assert recovery <= bound, recovery
            assert wait_until(lambda: emails_for(smtp, long_id), 40), "no outcome e-mail"

            status, body = web.request("POST", "/imports/", {"path": "long-2"})  # 10 s a run
            cancel_id = body["id"]
            detail = f"/imports/{cancel_id}/"
            assert wait_until(lambda: web.request("GET", detail)[1]["status"] == "running", 20)
            status, answer = web.request("POST", f"/imports/{cancel_id}/cancel")
            assert status == 202 and answer["status"] == "running", answer
            asked = time.monotonic()
            assert wait_until(lambda: web.request("GET", detail)[1]["status"] == "cancelled", 15)
            stopped_in = time.monotonic() - asked
            assert wait_until(lambda: emails_for(smtp, cancel_id), 20), "no cancel e-mail"
            assert web.request("POST", f"/imports/{cancel_id}/cancel")[0] == 409
            time.sleep(1.5)  # room for a duplicate e-mail, if one were coming
        except BaseException:
            print_logs(processes)
            raise
        finally:
            stop_all(processes)
        assert emails_for(smtp, long_id) == ["succeeded"]
        assert emails_for(smtp, cancel_id) == ["cancelled"]
        assert stopped_in < 10, stopped_in  # the next progress report, not the end of the run
        assert not (root / "long-4.overlaps").exists(), (root / "long-4.overlaps").read_text()
        assert len(runs(root, "long-2")) == 1
        assert Counter(r.import_id for r in smtp.handler.snapshot()) == {long_id: 1, cancel_id: 1}
        print(json.dumps({"recovery_s": round(recovery, 2), "cancel_s": round(stopped_in, 2)}))


@pytest.mark.one_leg(1)
def test_on_sqlite_a_killed_worker_s_import_runs_again_within_a_lease_and_never_twice_at_once(
    tmp_path,
):
    crash_overlap_and_cancel(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        broker_url="database://?lease=5",
        lease=5.0,
    )


@pytest.mark.postgres
@pytest.mark.artemis
@pytest.mark.one_leg(2)
def test_on_postgres_and_artemis_a_killed_worker_s_import_runs_again_at_once(
    tmp_path, postgres_server, artemis_server
):
    name = f"long_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    crash_overlap_and_cancel(
        tmp_path,
        database_url=postgres_server.url_for(name),
        broker_url=artemis_server.url,
        lease=5.0,  # Artemis has no lease: it redelivers when the connection drops
        probe=lambda: artemis_server.describe("imports"),
        remedy=lambda missing: artemis_server.restart_for_stranded("imports", missing),
    )


@pytest.mark.postgres
@pytest.mark.artemis
@pytest.mark.one_leg(1)
def test_an_import_whose_worker_is_killed_every_run_ends_failed_with_one_email(
    tmp_path, postgres_server, artemis_server
):
    """A worker SIGKILLed mid-import, again and again (an import that always runs out of memory).

    Kew gives the import up after ``MAX_CRASHES`` (3) deaths more than one, well
    before Artemis's own limit of 10 deliveries: it ends ``failed``, with one e-mail.
    """
    name = f"crash_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    with SMTPServer() as smtp:
        root, logs, env = start_app(
            tmp_path,
            smtp,
            ["long-1"],
            DATABASE_URL=postgres_server.url_for(name),
            KEW_BROKER_URL=artemis_server.url,
        )
        web = WebServer(env, logs, token=create_token(env))
        relay = Process("relay", ["kew_relay"], env, logs, ready="relay: started")
        worker = Process("imports", ["kew_consume", "imports"], env, logs, ready="kew: started")
        notifier = Process(
            "notifier",
            ["kew_consume", OUTCOMES_QUEUE, AUDIT_QUEUE],
            env,
            logs,
            ready="kew: started",
        )
        processes = [web, relay, worker, notifier]
        kills = restarts = 0
        try:
            for process in processes:
                process.start()
            status, body = web.request("POST", "/imports/", {"path": "long-1"})
            assert status == 202, body
            detail = f"/imports/{body['id']}/"

            def final() -> bool:
                return web.request("GET", detail)[1]["status"] != "running" and bool(
                    emails_for(smtp, body["id"])
                )

            while not final():
                assert kills <= 10, "still not given up after more deaths than Artemis allows"

                def next_run_or_final(killed: int = kills) -> bool:
                    return len(runs(root, "long-1")) > killed or final()

                if not wait_until(next_run_or_final, 30, 0.05):
                    # Only Artemis's stranded delivery (docs/artemis.md) may hold it up.
                    restarted = artemis_server.restart_for_stranded("imports", 1)
                    assert restarted, f"no run after a kill: {artemis_server.describe('imports')}"
                    restarts += 1
                    continue
                if final():
                    break
                worker.stop(signal.SIGKILL)  # mid-run: each run takes 5 s
                kills += 1
                worker.start()
            time.sleep(1.5)  # room for a duplicate e-mail, if one were coming
            final_status = web.request("GET", detail)[1]["status"]
        except BaseException:
            print_logs(processes)
            raise
        finally:
            stop_all(processes)
        # MAX_CRASHES (3) + 1: one crash or one deploy never gives up. A broker restart for a
        # stranded delivery may add one run: it comes back without ``redelivered``, so it is
        # not counted (docs/artemis.md, "Remedy").
        assert 4 <= kills <= 4 + restarts
        assert emails_for(smtp, body["id"]) == ["failed"]
        assert final_status == "failed"
        assert len(runs(root, "long-1")) == kills  # each run killed; never one more


def sigterm_mid_import(tmp_path: Path, *, database_url: str, broker_url: str) -> None:
    """Two import workers: SIGTERM the one running a long import, as a deploy does.

    It exits 0 within the grace period; the other worker runs the import
    to its end; the interrupted run spent no attempt (one outcome e-mail,
    ``attempts`` 1, the second run still delivery 1).
    """
    grace = 10.0
    with SMTPServer() as smtp:
        root, logs, env = start_app(
            tmp_path,
            smtp,
            ["long-2"],
            DATABASE_URL=database_url,
            KEW_BROKER_URL=broker_url,
            KEW_SHUTDOWN_GRACE=str(grace),
        )
        web = WebServer(env, logs, token=create_token(env))
        relay = Process("relay", ["kew_relay"], env, logs, ready="relay: started")
        workers = [
            Process(name, ["kew_consume", "imports"], env, logs, ready="kew: started")
            for name in ("imports-a", "imports-b")
        ]
        notifier = Process(
            "notifier",
            ["kew_consume", OUTCOMES_QUEUE, AUDIT_QUEUE],
            env,
            logs,
            ready="kew: started",
        )
        processes = [web, relay, *workers, notifier]
        try:
            for process in processes:
                process.start()
            status, body = web.request("POST", "/imports/", {"path": "long-2"})  # 10 s a run
            assert status == 202, body
            import_id = body["id"]
            detail = f"/imports/{import_id}/"
            assert wait_until(lambda: runs(root, "long-2"), 20), "the import did not start"
            (holder_pid,) = runs(root, "long-2")
            holder = next(p for p in workers if p.popen and p.popen.pid == holder_pid)
            time.sleep(2)  # well into the run
            sent = time.monotonic()
            code = holder.stop(signal.SIGTERM, timeout=grace + 10)
            took = time.monotonic() - sent
            assert code == 0 and took < grace, (code, took)
            assert "given back: shutting down" in holder.tail(200)
            assert wait_until(lambda: len(runs(root, "long-2")) == 2, 20), "not run elsewhere"
            assert wait_until(lambda: emails_for(smtp, import_id), 40), "no outcome e-mail"
            final = web.request("GET", detail)[1]
            time.sleep(1.5)  # room for a duplicate e-mail, if one were coming
        except BaseException:
            print_logs(processes)
            raise
        finally:
            stop_all(processes)
        assert final["status"] == "succeeded" and final["attempts"] == 1, final
        assert emails_for(smtp, import_id) == ["succeeded"]
        assert runs(root, "long-2")[0] == holder_pid and runs(root, "long-2")[1] != holder_pid
        print(json.dumps({"sigterm_exit_s": round(took, 2)}))


@pytest.mark.one_leg(1)
def test_on_sqlite_a_sigterm_mid_import_gives_it_to_the_other_worker_with_no_attempt_spent(
    tmp_path,
):
    sigterm_mid_import(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        broker_url="database://?lease=5",
    )


@pytest.mark.postgres
@pytest.mark.artemis
@pytest.mark.one_leg(2)
def test_on_postgres_and_artemis_a_sigterm_mid_import_resumes_elsewhere_with_no_attempt_spent(
    tmp_path, postgres_server, artemis_server
):
    name = f"term_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    sigterm_mid_import(
        tmp_path, database_url=postgres_server.url_for(name), broker_url=artemis_server.url
    )
