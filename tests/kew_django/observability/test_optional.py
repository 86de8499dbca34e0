"""Without prometheus_client and OpenTelemetry, Kew works and says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from kew_django.observability.metrics import Metrics
from kew_django.relay.publisher import Relay
from tests.kew_django.conftest import Job, Wrapped

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, os, sys, urllib.error, urllib.request

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("prometheus_client", "opentelemetry"):
                raise ImportError(f"{name} is blocked for this test")

    sys.meta_path.insert(0, Block())
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    import django

    django.setup()
    import kew_django.relay.publisher, kew_django.outbox.channel, kew_django.workers.worker
    from kew_django.observability import Observability, metrics_available, tracing

    assert not metrics_available() and not tracing.available()
    assert tracing.outbox_headers("q", {"a": "b"}, 1) == {"a": "b"}
    obs = Observability(kind="relay", queues=[], provider=None, port=0, record=False).start()
    answers = {}
    for path in ("/metrics", "/healthz"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{obs.port}{path}") as answer:
                answers[path] = [answer.status, answer.read().decode()]
        except urllib.error.HTTPError as error:
            answers[path] = [error.code, error.read().decode()]
    obs.close()
    print(json.dumps(answers))
    """
)


def test_kew_django_works_without_the_optional_libraries():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    answers = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert answers["/metrics"][0] == 501
    assert "pip install 'kew[metrics]'" in answers["/metrics"][1]
    assert answers["/healthz"][0] == 200


def test_the_relay_counts_rejected_and_failed_rows_per_queue(
    database_provider, outbox_sends, queue
):
    from kew_django import Channel

    rows = Channel(queue, payload=Job).send_many([Job(1), Job(2), Job(3)])
    wrapped = Wrapped(database_provider)
    wrapped.reject_ids = {str(rows[1].id)}
    metrics = Metrics(system="kew_database")
    Relay(wrapped, max_attempts=1, queues=[queue], observer=metrics).relay_all()
    labels = {"messaging_system": "kew_database", "messaging_destination_name": queue}
    value = metrics.registry.get_sample_value
    assert value("messaging_client_sent_messages_total", labels) == 2
    assert value("kew_relay_rejected_messages_total", labels) == 1
    assert value("kew_relay_failed_messages_total", labels) == 1
    batches = value(
        "messaging_client_operation_duration_seconds_count",
        {"messaging_system": "kew_database", "messaging_operation_name": "send"},
    )
    assert batches is not None and batches >= 2
