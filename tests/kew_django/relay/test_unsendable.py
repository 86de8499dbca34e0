"""One row a provider never takes stops nothing: refused at send(), isolated in the relay.

And no exception ends a relay thread; a runner whose thread dies exits non-zero.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import kew
from kew.errors import ConfigurationError
from kew_django import Channel
from kew_django import runner as runners
from kew_django.models import OutboxMessage
from kew_django.relay.publisher import Relay
from tests.contract.helpers import receive_all
from tests.kew_django.conftest import Job


def artemis_settings(settings, artemis_url: str) -> None:
    settings.KEW = {"PROVIDERS": {"default": {"URL": artemis_url}}}


@pytest.mark.parametrize(
    "properties",
    [
        {"priority": "9"},
        {"JMSType": "x"},
        {"_AMQ_X": "x"},
        {"note": "a\x00b"},
        {"big": "x" * 70000},
    ],
)
def test_send_refuses_what_artemis_never_takes(
    transactional_db, providers, settings, artemis_url, queue, properties
):
    artemis_settings(settings, artemis_url)
    with pytest.raises(ConfigurationError):
        Channel(queue, payload=Job).send(Job(1), properties=properties)
    assert not OutboxMessage.objects.exists()


def test_send_accepts_ordinary_properties_for_artemis(
    transactional_db, providers, settings, artemis_url, queue
):
    artemis_settings(settings, artemis_url)
    Channel(queue, payload=Job).send(Job(1), properties={"tenant": "lab-3"})
    assert OutboxMessage.objects.count() == 1


def test_an_unsendable_row_fails_alone_and_the_rest_of_its_batch_goes(
    transactional_db, artemis_url, queue
):
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(5)])
    # A row written before this check existed, or edited by hand:
    OutboxMessage.objects.filter(pk=rows[2].pk).update(headers={"priority": "9"})
    artemis = kew.connect(artemis_url)
    try:
        assert Relay(artemis).relay_all() == 5
        bad = OutboxMessage.objects.get(pk=rows[2].pk)
        assert bad.status == "failed" and "reserved" in bad.last_error
        assert OutboxMessage.objects.filter(status="sent").count() == 4
        got = receive_all(artemis, queue, 4)
        assert sorted(d.message_id for d in got) == sorted(
            str(r.pk) for i, r in enumerate(rows) if i != 2
        )
    finally:
        artemis.close()


def test_no_error_ends_a_relay_thread(database_provider, queue, monkeypatch):
    from kew_django.relay.claims import Claims

    Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    real_claim, failures = Claims.claim, []

    def broken_claim(self, limit):
        if len(failures) < 2:
            failures.append(1)
            raise RuntimeError("a bug somewhere (test)")
        return real_claim(self, limit)

    monkeypatch.setattr(Claims, "claim", broken_claim)
    relay = Relay(database_provider, poll_interval=0.05, backoff_max=0.1, threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while OutboxMessage.objects.filter(status="sent").count() < 2:
            assert thread.is_alive(), "the relay thread died"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)


class DyingRelay:
    """A relay whose thread ends at once, as if an error had escaped it."""

    provider = None  # what kew_run's observability reads from a relay
    observer = None

    def run(self, stop):
        raise RuntimeError("relay thread died (test)")


def test_runner_exits_with_an_error_when_a_thread_dies(transactional_db, consumers, caplog):
    runner = runners.Runner([], relay=DyingRelay(), progress_interval=0)  # type: ignore[arg-type]
    with pytest.raises(runners.ComponentDied, match="kew-relay"):
        runner.run()
    (died,) = [r for r in caplog.records if "died" in r.getMessage()]
    assert died.exc_info is not None and "relay thread died (test)" in str(died.exc_info[1])


def test_kew_run_exits_non_zero_when_a_thread_dies(
    transactional_db, consumers, providers, settings, monkeypatch
):
    import kew_django.management.commands.kew_run as kew_run

    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    monkeypatch.setattr(kew_run, "relay_from_settings", lambda **kw: DyingRelay())
    monkeypatch.setattr(kew_run, "stop_on_signals", lambda stop: None)
    with pytest.raises(CommandError) as caught:
        call_command("kew_run")
    assert caught.value.returncode == 1
