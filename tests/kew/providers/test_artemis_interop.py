"""Kew and Artemis's own CLI clients (core protocol) read each other's messages."""

from __future__ import annotations

import base64
import json
import uuid
import xml.etree.ElementTree as ET

import pytest

from kew.providers import connect
from kew.providers.base import DeliveryOptions
from tests.harness.services import ServiceUnavailable, service_missing

pytestmark = pytest.mark.artemis


def run_cli(server, *args):
    """Run ``bin/artemis`` from the harness's distribution, or skip if there is none."""
    try:
        result = server.cli(*args)
    except ServiceUnavailable as missing:
        service_missing("the Artemis distribution's CLI", missing.install_hint)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def queue() -> str:
    return f"test.interop.{uuid.uuid4().hex[:12]}"


def test_the_cli_consumer_reads_what_kew_sent(artemis_server, queue, tmp_path):
    provider = connect(artemis_server.url)
    payload = "Grüße from Kew".encode()
    with provider.producer() as producer:
        producer.send(
            queue, payload, DeliveryOptions(message_id="kew-1", properties={"tenant": "lab"})
        )
    provider.close()
    dump = tmp_path / "messages.xml"
    run_cli(
        artemis_server,
        "consumer",
        "--destination",
        f"queue://{queue}",
        "--message-count",
        "1",
        "--receive-timeout",
        "10000",
        "--data",
        str(dump),
    )
    (message,) = ET.parse(dump).getroot().iter("message")
    properties = {p.get("name"): p.get("value") for p in message.iter("property")}
    assert message.get("type") == "bytes"
    assert base64.b64decode(message.findtext("body").strip()) == payload
    assert properties["tenant"] == "lab"
    assert properties["_AMQ_DUPL_ID"] == "kew-1"


def test_kew_reads_what_the_cli_producer_sent(artemis_server, queue):
    properties = [{"type": "string", "key": "origin", "value": "cli"}]
    run_cli(
        artemis_server,
        "producer",
        "--destination",
        f"queue://{queue}",
        "--message-count",
        "2",
        "--message",
        "hello from the CLI ✓",
        "--properties",
        json.dumps(properties),
    )
    provider = connect(artemis_server.url)
    try:
        with provider.receiver(queue) as consumer:
            got = []
            while (delivery := consumer.receive(5)) is not None:
                delivery.ack()
                got.append(delivery)
                if len(got) == 2:
                    break
    finally:
        provider.close()
    assert [d.payload for d in got] == ["hello from the CLI ✓".encode()] * 2
    assert [d.properties["origin"] for d in got] == ["cli", "cli"]
    assert [d.properties["count"] for d in got] == ["0", "1"]
