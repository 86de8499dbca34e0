"""The guarantee, end to end: every accepted import gets exactly one outcome e-mail.

Imports that succeed, fail transiently and then succeed, fail permanently,
and exhaust their retries are requested over HTTP from a running web
server, while a real SMTP server refuses mail for a while and the
consumers and the relay are killed and started again. At the end each
accepted import has exactly one e-mail with the right outcome, and nothing
is left in the outbox or the queues. Runs on the embedded default (SQLite
and the database provider) and on PostgreSQL with Artemis.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kew.providers.artemis.topics import queue_name as artemis_queue_name
from project.imports.messages import AUDIT_QUEUE, OUTCOMES_QUEUE
from project.imports.samples import create_sample
from tests.harness.e2e import (
    Process,
    SMTPServer,
    WebServer,
    app_env,
    create_token,
    manage,
    report,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.one_leg(2)]

IMPORT_RETRY = "0.2s 0.2s 0.5s"  # four runs in all
# Outlasts the mail server's refusals, even on a loaded machine.
NOTIFY_RETRY = "0.5s 1s 1s 2s 2s 3s 3s 5s 5s 10s"
DEADLINE = 90.0  # a bound for a loaded CI machine; on an idle one it takes 10-20 s

# name prefix -> (outcome, attempts); the scripted importer reads the name.
SCENARIO = {
    "ok": ("succeeded", 1),
    "stall-ok": ("succeeded", 1),
    "transient-2": ("succeeded", 3),
    "permanent": ("failed", 1),
    "transient-9": ("failed", 4),  # at least: see check_state
}
# Requested in this order; the stalling import last, as it blocks SQLite's writers until
# the test kills its worker.
COUNTS = {"ok": 8, "transient-2": 5, "permanent": 4, "transient-9": 4, "stall-ok": 1}


def make_root(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "import-root"
    root.mkdir()
    names = []
    for prefix, count in COUNTS.items():
        for n in range(1, count + 1):
            name = f"{prefix}-{n}"
            create_sample(root, name)
            names.append(name)
    return root, names


def run_the_guarantee(
    tmp_path: Path,
    *,
    database_url: str,
    broker_url: str | None,
    queue_depth: Callable[[str], int] | None = None,
    probe: Callable[[], str] | None = None,
    remedy: Callable[[int], bool] | None = None,
) -> None:
    """Run the scenario; ``queue_depth`` counts a broker queue's messages (default: browse).

    ``remedy`` is given the number of imports not told at the deadline;
    if it restarts the broker for them (True), they get a deadline more.
    ``probe`` describes the broker's state; it is printed if the deadline
    passes, while every process still runs (who consumes what), and its
    last line goes into the failure message.
    """
    root, names = make_root(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    with SMTPServer() as smtp:
        env = app_env(
            DATABASE_URL=database_url,
            EMAIL_URL=smtp.url,
            IMPORT_ROOTS=str(root),
            IMPORT_IMPORTER="project.imports.testing.ScriptedImporter",
            IMPORT_RETRY=IMPORT_RETRY,
            NOTIFY_RETRY=NOTIFY_RETRY,
            KEW_LOG_LEVEL="INFO",
        )
        if broker_url:
            env["KEW_BROKER_URL"] = broker_url
        else:
            env.pop("KEW_BROKER_URL", None)
        manage(["migrate", "--noinput"], env)
        web = WebServer(env, logs, token=create_token(env))
        relay = Process("relay", ["kew_relay"], env, logs, ready="relay: started")
        importer = Process(
            "consume-imports", ["kew_consume", "imports"], env, logs, ready="kew: started"
        )
        notifier = Process(
            "consume-outcomes",
            ["kew_consume", OUTCOMES_QUEUE, AUDIT_QUEUE],
            env,
            logs,
            ready="kew: started",
        )
        processes = [web, relay, importer, notifier]
        smtp.handler.refusing.set()
        try:
            for process in processes:
                process.start()
            started = time.monotonic()
            accepted = submit(web, names)
            rejected = submit_invalid(web)

            # A crash in the middle of an import (it stalls until released): it must run again.
            crash_during = f"importing {root / 'stall-ok-1'}"
            assert wait_until(lambda: crash_during in importer.output(), 20, 0.01), importer.tail()
            importer.stop(signal.SIGKILL)
            (root / "stall-ok-1.release").touch()
            importer.start()
            relay.restart(signal.SIGKILL)  # a relay crash, with outcome notices still to send
            # The mail server refuses a few notices; then the notifier restarts cleanly with
            # their retries pending, and they are refused once more before it gives in.
            refusals = smtp.handler.refusals
            assert wait_until(lambda: refusals() >= 3, 20), f"no refusals:\n{notifier.tail()}"
            assert notifier.restart(signal.SIGTERM) == 0, notifier.tail()
            after_restart = refusals()
            assert wait_until(lambda: refusals() > after_restart, 20), notifier.tail()
            smtp.handler.refusing.clear()

            def all_told() -> bool:
                told = {r.import_id for r in smtp.handler.snapshot()}
                return set(accepted) <= told

            done = wait_until(all_told, DEADLINE - (time.monotonic() - started))
            if not done and remedy is not None and remedy(len(missing(accepted, smtp))):
                done = wait_until(all_told, DEADLINE)
            broker = probe() if not done and probe is not None else ""
            print(f"the broker, at the deadline:\n{broker}" if broker else "", end="")
            time.sleep(1.0)  # room for a duplicate e-mail to show up, if one were coming
            for process in processes:
                assert process.running(), f"{process.name} died:\n{process.tail()}"
        except BaseException:
            print_logs(processes)
            raise
        finally:
            for process in processes:
                process.stop(signal.SIGTERM)
        state = report(env)
        if queue_depth is not None:
            state["waiting"] = {queue: queue_depth(queue) for queue in state["waiting"]}
        try:
            assert done, (
                f"not every import was told within {DEADLINE}s: {missing(accepted, smtp)}; "
                f"database: {diagnosis(accepted, smtp, state)}; broker: {broker.splitlines()[-1:]}"
            )
            check_emails(accepted, smtp)
            check_state(accepted, state)
            assert importer.output().count(crash_during) == 2, "the crashed import was not rerun"
            assert not rejected & set(state["imports"]), "a rejected request left an Import"
        except AssertionError:
            print_logs(processes)
            raise


def submit(web: WebServer, names: list[str]) -> dict[str, str]:
    """Request an import of each name; return {import id: name}."""
    accepted = {}
    for name in names:
        status, body = web.request("POST", "/imports/", {"path": name})
        assert status == 202, body
        accepted[body["id"]] = name
    return accepted


def submit_invalid(web: WebServer) -> set[str]:
    """Send requests that must be refused; return any ids they were wrongly given."""
    ids = set()
    for body in ({"path": "../etc"}, {"path": "ok-1", "email": "someone-else@x.org"}):
        status, answer = web.request("POST", "/imports/", body)
        assert status == 400, answer
        ids.add(answer.get("id"))
    return ids - {None}


def expected(name: str) -> tuple[str, int]:
    return SCENARIO[name.rsplit("-", 1)[0]]


def check_emails(accepted: dict[str, str], smtp: SMTPServer) -> None:
    received = smtp.handler.snapshot()
    per_import = Counter(r.import_id for r in received)
    assert set(per_import) == set(accepted), "an e-mail for an import nobody asked for"
    duplicates = {i: n for i, n in per_import.items() if n != 1}
    assert not duplicates, f"imports e-mailed more than once: {duplicates}"
    for mail in received:
        name = accepted[mail.import_id]
        assert mail.status == expected(name)[0], (name, mail)
        assert mail.to == ("e2e@x.org",)  # the requester's own address, whatever the import
        assert mail.message_id == f"<import-{mail.import_id}.outcome@localhost>"
        assert mail.subject.startswith(f"Import {expected(name)[0]}: {name}")


def check_state(accepted: dict[str, str], state: dict) -> None:
    imports = state["imports"]
    assert set(imports) == set(accepted)
    for import_id, name in accepted.items():
        record = imports[import_id]
        status, attempts = expected(name)
        assert record["notified"], name
        if name.startswith("transient-9"):
            # Four deliveries; a consumer killed after a failed attempt committed but before
            # its retry was sent runs the same delivery again, so there may be more runs.
            assert record["status"] == status, (name, record)
            assert record["attempts"] >= attempts, (name, record)
            plural = f"gave up after {record['attempts']} attempts: TransientImportError"
            assert record["error"].startswith(plural), record
        else:
            assert (record["status"], record["attempts"]) == (status, attempts), (name, record)
        if status == "succeeded":
            assert record["files"] == 5, record
    assert set(state["outbox"]) == {"sent"}, f"outbox rows not sent: {state['outbox']}"
    assert state["queued"] == 0, "messages left in the database queue"
    assert state["waiting"] == {"imports": 0, OUTCOMES_QUEUE: 0}, state["waiting"]
    exhausted = {i for i, n in accepted.items() if n.startswith("transient-9")}
    dead = state["dead"]
    assert all(d["queue"] == "imports" and d["reason"] == "exhausted" for d in dead), dead
    assert {d["payload"] for d in dead} == {f'{{"import_id":"{i}"}}' for i in exhausted}


def missing(accepted: dict[str, str], smtp: SMTPServer) -> list[str]:
    told = {r.import_id for r in smtp.handler.snapshot()}
    return sorted(name for import_id, name in accepted.items() if import_id not in told)


def diagnosis(accepted: dict[str, str], smtp: SMTPServer, state: dict) -> dict:
    """Return what the database knows of the imports not told, and what is left in flight."""
    told = {r.import_id for r in smtp.handler.snapshot()}
    return {
        "untold": {accepted[i]: state["imports"].get(i) for i in accepted if i not in told},
        **{key: state[key] for key in ("outbox", "queued", "waiting", "dead")},
    }


def print_logs(processes: list[Process]) -> None:
    for process in processes:
        print(f"----- {process.name} (started {process.starts}x; whole log: {process.log_path})")
        print(process.tail(60))


def test_exactly_one_outcome_email_per_import_on_sqlite(tmp_path):
    """The embedded default: SQLite in a file, the database provider as the queue."""
    run_the_guarantee(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", broker_url=None
    )


@pytest.mark.postgres
@pytest.mark.artemis
def test_exactly_one_outcome_email_per_import_on_postgres_and_artemis(
    tmp_path, postgres_server, artemis_server
):
    """PostgreSQL for the data and the outbox, Artemis (STOMP) as the broker."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)

    def queue_depth(queue: str) -> int:
        """Count the messages Artemis holds for ``queue``: waiting, scheduled or in delivery."""
        stat = artemis_server.queue_stat(artemis_queue_name(queue))  # a subscription's: t.n
        assert stat is not None, f"Artemis has no queue {queue!r}: were the messages sent there?"
        counts = ("messageCount", "scheduledCount", "deliveringCount")
        return sum(int(stat.get(key, 0)) for key in counts)

    run_the_guarantee(
        tmp_path,
        database_url=postgres_server.url_for(name),
        broker_url=artemis_server.url,
        queue_depth=queue_depth,
        probe=lambda: artemis_server.describe("imports", OUTCOMES_QUEUE),
        remedy=lambda untold: artemis_server.restart_for_stranded("imports", untold),
    )


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_exactly_one_outcome_email_per_import_on_postgres_and_rabbitmq(
    tmp_path, postgres_server, rabbitmq_server
):
    """PostgreSQL for the data and the outbox, RabbitMQ (AMQP, quorum queues) as the broker."""
    import pika

    from kew.providers.rabbitmq import parse_url

    name = f"e2e_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    config = parse_url(rabbitmq_server.url)
    ladder = [f"{config.delay_prefix}.{level}" for level in range(config.delay_levels)]

    def queue_depth(queue: str) -> int:
        """Count what RabbitMQ holds for ``queue``, and anything waiting in the delay ladder."""
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server.url))
        try:
            channel = connection.channel()
            total = 0
            for each in [queue, *ladder]:
                try:
                    total += channel.queue_declare(each, passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:  # never declared: nothing there
                    channel = connection.channel()
            return total
        finally:
            connection.close()

    run_the_guarantee(
        tmp_path,
        database_url=postgres_server.url_for(name),
        broker_url=rabbitmq_server.url,
        queue_depth=queue_depth,
    )
