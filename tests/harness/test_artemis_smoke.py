"""The Artemis broker from tests.harness is real: STOMP round trips with stomp.py itself.

No kew provider is involved: these tests check the harness and the broker
facts in DESIGN.md (ANYCAST routing, ``persistent:true``, receipts, STOMP 1.2
``client-individual`` acks) against the real broker.
"""

from __future__ import annotations

import queue
import uuid

import pytest
import stomp

from tests.harness.artemis import ArtemisServer
from tests.harness.artemis.instance import JOURNAL_BUFFER_TIMEOUT_NS, journal_buffer_timeout
from tests.harness.services import ServiceStartError, service_unsupported

pytestmark = pytest.mark.artemis

TIMEOUT = 15.0


class Collector(stomp.ConnectionListener):
    """Hands frames from stomp.py's I/O thread to the test thread (never blocks there)."""

    def __init__(self) -> None:
        self.messages: queue.Queue[stomp.utils.Frame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[stomp.utils.Frame] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame: stomp.utils.Frame) -> None:
        self.errors.put(frame)


class Client:
    """A STOMP 1.2 connection plus its collector (test helper, not a kew provider)."""

    def __init__(self, server: ArtemisServer) -> None:
        # stomp.Connection is STOMP 1.1 in stomp.py 9: ask for 1.2 explicitly
        self.conn = stomp.Connection12(
            [(server.stomp_host, server.stomp_port)], heartbeats=(10_000, 10_000)
        )
        self.events = Collector()
        self.conn.set_listener("collector", self.events)
        self.conn.connect(server.user, server.password, wait=True)

    def wait_receipt(self, receipt: str) -> None:
        got = self.events.receipts.get(timeout=TIMEOUT)
        assert got == receipt
        assert self.events.errors.empty(), self.events.errors.get_nowait().body

    def send(self, destination: str, body: str, *, persistent: bool = True) -> None:
        receipt = f"send-{uuid.uuid4()}"
        self.conn.send(
            destination,
            body,
            headers={
                "persistent": "true" if persistent else "false",
                "destination-type": "ANYCAST",
                "receipt": receipt,
            },
        )
        self.wait_receipt(receipt)

    def subscribe(self, destination: str) -> None:
        self.conn.subscribe(
            destination,
            id="sub-1",
            ack="client-individual",
            headers={"subscription-type": "ANYCAST"},
        )

    def receive(self, timeout: float = TIMEOUT) -> stomp.utils.Frame:
        return self.events.messages.get(timeout=timeout)

    def ack(self, frame: stomp.utils.Frame) -> None:
        receipt = f"ack-{uuid.uuid4()}"
        # STOMP 1.2: the ACK's id is the MESSAGE's "ack" header
        self.conn.ack(frame.headers["ack"], receipt=receipt)
        self.wait_receipt(receipt)

    def assert_nothing(self, wait: float = 1.0) -> None:
        with pytest.raises(queue.Empty):
            frame = self.events.messages.get(timeout=wait)
            pytest.fail(f"unexpected message {frame.body!r}")

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()


@pytest.fixture
def destination() -> str:
    return f"kew.test.smoke.{uuid.uuid4().hex}"


@pytest.fixture
def client(artemis_server: ArtemisServer):
    clients: list[Client] = []

    def connect() -> Client:
        clients.append(Client(artemis_server))
        return clients[-1]

    yield connect
    for each in clients:
        each.close()


def test_server_attributes(artemis_server: ArtemisServer, artemis_url: str) -> None:
    assert artemis_url == artemis_server.url
    assert artemis_url.startswith("artemis://")
    assert f":{artemis_server.stomp_port}" in artemis_url
    if artemis_server.mode == "local":
        assert (artemis_server.home / "bin" / "artemis").exists()
        broker_xml = (artemis_server.instance_dir / "etc" / "broker.xml").read_text()
        # set, not NIO's 3.33 ms default that --no-autotune leaves (every receipt waited it)
        assert f"<journal-buffer-timeout>{JOURNAL_BUFFER_TIMEOUT_NS}<" in broker_xml
        assert "AMQ221007" in artemis_server.log_tail(200)


def test_the_buffer_timeout_is_added_once_or_replaced() -> None:
    setting = f"<journal-buffer-timeout>{JOURNAL_BUFFER_TIMEOUT_NS}</journal-buffer-timeout>"
    xml = "<journal-datasync>true</journal-datasync>"
    assert journal_buffer_timeout(xml) == f"{xml}\n      {setting}"
    tuned = "<journal-buffer-timeout>3333333</journal-buffer-timeout>"
    assert journal_buffer_timeout(xml + tuned) == xml + setting
    with pytest.raises(ServiceStartError, match="no </journal-datasync>"):
        journal_buffer_timeout("<core/>")


def test_stomp_round_trip(client, destination: str) -> None:
    producer = client()
    # sent before any consumer exists: ANYCAST keeps it in a queue
    producer.send(destination, "hello artemis")

    consumer = client()
    consumer.subscribe(destination)
    frame = consumer.receive()
    assert frame.body == "hello artemis"
    assert frame.headers["destination"] == destination
    assert frame.headers["subscription"] == "sub-1"
    assert "ack" in frame.headers
    consumer.ack(frame)
    consumer.close()

    # acknowledged: a new consumer gets nothing
    again = client()
    again.subscribe(destination)
    again.assert_nothing()


def test_default_multicast_drops_message_without_subscriber(client, destination: str) -> None:
    # DESIGN.md: without destination-type:ANYCAST the address is MULTICAST and a
    # message sent before any subscription exists goes nowhere
    producer = client()
    receipt = f"send-{uuid.uuid4()}"
    producer.conn.send(destination, "lost", headers={"persistent": "true", "receipt": receipt})
    producer.wait_receipt(receipt)
    consumer = client()
    consumer.conn.subscribe(destination, id="sub-1", ack="client-individual")
    consumer.assert_nothing()


def test_unacked_message_is_redelivered_after_disconnect(client, destination: str) -> None:
    client().send(destination, "redeliver me")
    first = client()
    first.subscribe(destination)
    assert first.receive().body == "redeliver me"
    first.close()  # no ACK

    second = client()
    second.subscribe(destination)
    frame = second.receive()
    assert frame.body == "redeliver me"
    assert frame.headers.get("redelivered") == "true"
    second.ack(frame)


def test_restart_keeps_persistent_message(
    artemis_server: ArtemisServer, client, destination: str
) -> None:
    if not artemis_server.controllable:
        service_unsupported("cannot restart the external broker given by KEW_TEST_ARTEMIS_URL")
    producer = client()
    producer.send(destination, "durable", persistent=True)
    producer.send(destination, "volatile", persistent=False)
    producer.close()

    artemis_server.restart()

    consumer = client()
    consumer.subscribe(destination)
    frame = consumer.receive()
    assert frame.body == "durable"
    consumer.ack(frame)
    # DESIGN.md: without persistent:true a message does not survive a restart
    consumer.assert_nothing()


def test_crash_keeps_receipted_persistent_message(
    artemis_server: ArtemisServer, client, destination: str
) -> None:
    if not artemis_server.controllable:
        service_unsupported("cannot kill the external broker given by KEW_TEST_ARTEMIS_URL")
    producer = client()
    producer.send(destination, "survives a crash", persistent=True)
    producer.close()

    artemis_server.kill()
    assert not artemis_server.is_running()
    artemis_server.start()

    consumer = client()
    consumer.subscribe(destination)
    frame = consumer.receive()
    assert frame.body == "survives a crash"
    consumer.ack(frame)


def test_cli_producer_interoperates_with_stomp(
    artemis_server: ArtemisServer, client, destination: str
) -> None:
    result = artemis_server.cli(
        "producer",
        "--destination",
        f"queue://{destination}",
        "--message-count",
        "1",
        "--message",
        "from the artemis CLI",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    consumer = client()
    consumer.subscribe(destination)
    frame = consumer.receive()
    assert frame.body == "from the artemis CLI"
    consumer.ack(frame)

    stat = artemis_server.queue_stat(destination)
    assert stat is not None
    assert stat["routingType"] == "ANYCAST"
    assert (stat["messagesAdded"], stat["messagesAcked"], stat["messageCount"]) == ("1", "1", "0")
