"""/healthz, /readyz and /metrics of a Kew process."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import kew
from kew.errors import ConfigurationError
from kew_django.observability import Observability
from kew_django.observability.health import HealthServer, Liveness
from tests.kew_django.observability.helpers import get, wait_until


def test_readyz_turns_unready_while_the_broker_is_stopped_and_ready_when_it_returns(
    transactional_db, artemis_server, artemis_url, settings
):
    settings.KEW = {**settings.KEW, "OBSERVABILITY": {"READY_CACHE": 0}}  # each probe checks
    provider = kew.connect(artemis_url)
    observability = Observability(
        kind="consume", queues=[], provider=provider, port=0, record=False
    ).start()
    port = observability.port
    assert port
    try:
        assert get(port, "/readyz") == (200, {"ready": True, "reason": None})
        artemis_server.stop()
        status, body = get(port, "/readyz")
        assert status == 503 and not body["ready"]
        assert "provider unreachable" in body["reason"]
        assert get(port, "/healthz")[0] == 200  # alive: an outage is not the process's fault
        artemis_server.start()
        wait_until(lambda: get(port, "/readyz")[0] == 200, timeout=60, what="ready again")
    finally:
        observability.close()
        provider.close()


def test_readyz_says_when_the_database_is_unreachable(transactional_db, settings):
    from django.db import connections

    server = HealthServer(port=0, liveness=Liveness(), using="default", ready_cache=0).start()
    try:
        assert get(server.port, "/readyz")[0] == 200
        settings_dict = connections["default"].settings_dict
        real = settings_dict["NAME"]
        threading_connections = connections  # the server's thread builds its own connection
        settings_dict["NAME"] = "/nonexistent/folder/db.sqlite3"
        if settings_dict["ENGINE"].endswith("postgresql"):
            settings_dict["NAME"] = "kew_no_such_database"
        try:
            status, body = get(server.port, "/readyz")
        finally:
            settings_dict["NAME"] = real
            threading_connections["default"].close()
        assert status == 503 and "database 'default' unreachable" in body["reason"]
    finally:
        server.close()


def test_a_burst_of_readiness_probes_checks_once_per_cache_interval(transactional_db):
    server = HealthServer(port=0, liveness=Liveness(), ready_cache=30, max_threads=8).start()
    checks = []
    real = server.readiness.check
    server.readiness.check = lambda: checks.append(1) or real()
    try:
        answers: list[int] = []
        probes = [
            threading.Thread(target=lambda: answers.append(get(server.port, "/readyz")[0]))
            for _ in range(6)
        ]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join(timeout=30)
        assert answers.count(200) + answers.count(503) == 6 and 200 in answers
        assert len(checks) == 1
    finally:
        server.close()


def test_clients_that_send_nothing_cannot_hold_more_than_max_threads():
    server = HealthServer(port=0, liveness=Liveness(), max_threads=2).start()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        wait_until(lambda: server.server.slots._value == 0, timeout=10, what="both slots held")
        status, _ = get(server.port, "/healthz")
        assert status == 503  # refused at once, not queued behind the idle clients
        before = threading.active_count()
        for _ in range(5):
            assert get(server.port, "/healthz")[0] == 503
        assert threading.active_count() <= before
    finally:
        for connection in idle:
            connection.close()
        server.close()
    wait_until(lambda: server.server.slots._value == 2, timeout=10, what="slots freed")


def test_healthz_names_a_loop_that_stopped_turning_but_not_one_busy_with_a_delivery():
    liveness = Liveness(timeout=0.2)
    server = HealthServer(port=0, liveness=liveness).start()
    try:
        liveness.turned("q")  # this thread: MainThread
        assert get(server.port, "/healthz") == (200, {"live": True, "stale": []})
        time.sleep(0.3)
        status, body = get(server.port, "/healthz")
        assert status == 503 and body["stale"] == [threading.current_thread().name]
        from kew.qchan.observe import Handling

        with liveness.handling(Handling("q", delivery=None)):  # type: ignore[arg-type]
            assert liveness.in_progress == {"q": 1}
            assert get(server.port, "/healthz")[0] == 200
        assert liveness.in_progress == {"q": 0}
    finally:
        server.close()


def test_metrics_and_unknown_paths_answer_clearly_without_a_registry():
    server = HealthServer(port=0, liveness=Liveness()).start()
    try:
        status, body = get(server.port, "/metrics")
        assert status == 501 and "pip install 'kew[metrics]'" in body
        status, body = get(server.port, "/nope")
        assert status == 404 and "/metrics, /healthz, /readyz" in body
    finally:
        server.close()


@pytest.mark.parametrize("port", [-1, 70000, "9100"])
def test_a_bad_port_is_a_clear_error(port):
    with pytest.raises(ConfigurationError, match="a metrics port is a number from 0 to 65535"):
        Observability(kind="relay", queues=[], provider=None, port=port, record=False)


def test_a_port_in_use_is_a_clear_error():
    first = HealthServer(port=0, liveness=Liveness())
    try:
        with pytest.raises(ConfigurationError, match="cannot serve metrics on 127.0.0.1:"):
            Observability(kind="relay", queues=[], provider=None, port=first.port, record=False)
    finally:
        first.server.server_close()
