"""Failures a real broker will not stage on cue: silence, a cut, a refused receipt marker.

A stand-in server on 127.0.0.1 answers CONNECT with CONNECTED and then
misbehaves; the provider must raise ``ConnectionLost`` within its
timeouts, never hang and never report a send as stored.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from kew.errors import ConnectionLost, ProviderError, SendError
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing

CONNECTED = b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00"


class Misbehaving:
    """Accept STOMP sessions; then stay silent, hang up at the first SEND, or refuse receipts."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sends = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        buffer = b""
        with conn:
            while b"\x00" not in buffer:  # the CONNECT frame
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            conn.sendall(CONNECTED)
            while chunk := conn.recv(65536):
                self.sends += chunk.count(b"SEND\n")
                if self.mode == "hang-up" and self.sends:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if self.mode == "refuse-receipts" and b"\nreceipt:" in chunk:
                    receipt = chunk.split(b"\nreceipt:")[1].split(b"\n")[0]
                    conn.sendall(b"ERROR\nreceipt-id:" + receipt + b"\nmessage:not allowed\n\n\x00")
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def close(self):
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent():
    server = Misbehaving("silent")
    yield server
    server.close()


@pytest.fixture
def refuse_receipts():
    server = Misbehaving("refuse-receipts")
    yield server
    server.close()


@pytest.fixture
def hang_up():
    server = Misbehaving("hang-up")
    yield server
    server.close()


def test_a_missing_receipt_raises_connection_lost_after_the_timeout(silent):
    broker = connect(f"artemis://u:p@127.0.0.1:{silent.port}/", receipt_timeout=0.5, heartbeat=0)
    producer = broker.producer()
    began = time.monotonic()
    with pytest.raises(ConnectionLost, match="did not confirm 1 message"):
        producer.send("q", b"x")
    assert 0.4 < time.monotonic() - began < 3
    broker.close()


def test_a_connection_cut_mid_send_raises_instead_of_dropping_the_message(hang_up):
    broker = connect(
        f"artemis://u:p@127.0.0.1:{hang_up.port}/",
        heartbeat=0,
        reconnect_attempts=1,
        reconnect_delay=0,
    )
    producer = broker.producer()
    with pytest.raises(ConnectionLost):
        producer.send_many([Outgoing("q", b"x" * 1000) for _ in range(50)])
    assert hang_up.sends >= 1
    broker.close()


def test_a_batch_with_ids_is_sent_once_more_before_giving_up(hang_up):
    broker = connect(
        f"artemis://u:p@127.0.0.1:{hang_up.port}/",
        heartbeat=0,
        reconnect_attempts=1,
        reconnect_delay=0,
    )
    producer = broker.producer()
    with pytest.raises(ConnectionLost):
        producer.send("q", b"x", DeliveryOptions(message_id="m-1"))
    assert len(hang_up.connections) == 2  # the first try, and one resend on a new connection
    broker.close()


def test_a_refused_receipt_marker_is_a_provider_error_that_names_the_setting(refuse_receipts):
    # Only the marker after the batch asks for a receipt, so the ERROR is the marker's: a broker
    # setting is at fault, not a message (a relay backs off instead of failing rows).
    broker = connect(
        f"artemis://u:p@127.0.0.1:{refuse_receipts.port}/?receipt_address=kew.marks",
        heartbeat=0,
        reconnect_attempts=1,
        reconnect_delay=0,
    )
    producer = broker.producer()
    with pytest.raises(ProviderError, match="receipt_address") as caught:
        producer.send_many(
            [Outgoing("q", b"x", DeliveryOptions(message_id=f"m-{i}")) for i in range(3)]
        )
    assert not isinstance(caught.value, (SendError, ConnectionLost))
    assert "'kew.marks'" in str(caught.value) and "not allowed" in str(caught.value)
    assert refuse_receipts.sends == 4  # three messages and the marker
    broker.close()
