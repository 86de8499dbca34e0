"""A broker that is up but confirms nothing: the producer reports it as holding producers back.

A stand-in STOMP server answers CONNECT and sends heart-beats, but never a
RECEIPT (what a broker blocking its producers looks like on the wire).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from kew.errors import BrokerBlocked, ConnectionLost
from kew.providers import connect


class Holding:
    """Accept STOMP sessions, beat every 0.2 s if asked to, and never confirm a frame."""

    def __init__(self, *, beats: bool):
        self.beats = beats
        self.sends = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while b"\x00" not in buffer:  # the CONNECT frame
                if not (chunk := conn.recv(65536)):
                    return
                buffer += chunk
            beat = b"500,500" if self.beats else b"0,0"
            conn.sendall(b"CONNECTED\nversion:1.2\nheart-beat:" + beat + b"\n\n\x00")
            if self.beats:
                threading.Thread(target=self._beat, args=(conn,), daemon=True).start()
            while chunk := conn.recv(65536):
                self.sends += chunk.count(b"SEND\n")

    def _beat(self, conn: socket.socket) -> None:
        while not self.stop.wait(0.2):
            try:
                conn.sendall(b"\n")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def holding():
    server = Holding(beats=True)
    yield server
    server.close()


@pytest.fixture
def silent():
    server = Holding(beats=False)
    yield server
    server.close()


def test_a_live_broker_that_confirms_nothing_is_holding_producers_back(holding):
    url = f"artemis://u:p@127.0.0.1:{holding.port}/"
    broker = connect(url, receipt_timeout=2, heartbeat=500)
    producer = broker.producer()
    began = time.monotonic()
    with pytest.raises(BrokerBlocked, match="heart-beats arrive"):
        producer.send("q", b"x")
    assert 1.9 < time.monotonic() - began < 5
    assert holding.sends == 2  # the message and its receipt marker, not sent a second time
    broker.close()


def test_a_silent_broker_is_a_lost_connection_not_a_blocked_one(silent):
    broker = connect(f"artemis://u:p@127.0.0.1:{silent.port}/", receipt_timeout=0.5, heartbeat=0)
    producer = broker.producer()
    with pytest.raises(ConnectionLost) as raised:
        producer.send("q", b"x")
    assert not isinstance(raised.value, BrokerBlocked)
    broker.close()
