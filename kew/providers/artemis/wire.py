"""One STOMP connection to Artemis through stomp.py, and what its I/O thread saw on it.

Threads: stomp.py reads frames on its own I/O thread and calls ``Wire``'s
listener methods there. They only record what arrived (receipts, an
ERROR, the loss of the connection) under a condition variable, and hand
MESSAGE frames to a callback that must not block (receivers put them on a
``queue.Queue``). Callers wait for receipts on their own thread, always
with a deadline, so a silent broker raises ``ConnectionLost`` instead of
hanging.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import stomp
import stomp.exception
import stomp.protocol
import stomp.utils

from kew.errors import BrokerBlocked, ConfigurationError, ConnectionLost
from kew.providers.artemis.config import ArtemisConfig

log = logging.getLogger(__name__)

MessageCallback = Callable[["Wire", stomp.utils.Frame], None]
WRITE_CHUNK = 64 * 1024  # bytes of encoded frames per socket write in ``send_many``


def encode_send(destination: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """Return one SEND frame as STOMP 1.2 bytes, escaped and packed by stomp.py (any thread)."""
    encoded = dict(headers, destination=destination)
    stomp.protocol.Protocol12._escape_headers(None, encoded)  # as Connection12.send escapes
    frame = stomp.utils.Frame("SEND", encoded, body)
    return stomp.utils.pack(stomp.utils.convert_frame(frame))


class BrokerRefused(Exception):
    """The broker answered a frame with ERROR (and then closed the connection)."""

    def __init__(self, message: str, receipt_id: str | None):
        super().__init__(message)
        self.receipt_id = receipt_id


class Unreachable(Exception):
    """No STOMP session could be opened with one host."""


def new_receipt() -> str:
    """Return a fresh receipt id."""
    return uuid.uuid4().hex


class Wire(stomp.ConnectionListener):
    """One stomp.py connection and what its I/O thread has seen on it.

    Artemis closes a connection after any ERROR frame, so a wire that got
    an ERROR, lost its socket or missed a receipt is never used again.
    """

    def __init__(
        self,
        config: ArtemisConfig,
        host: str,
        port: int,
        generation: int,
        on_message: MessageCallback | None,
        on_lost: Callable[[], None] | None,
    ):
        self.host, self.port, self.generation = host, port, generation
        self.conn = stomp.Connection12(
            [(host, port)],
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_attempts_max=1,
            timeout=config.connect_timeout,
            heartbeats=(config.heartbeat, config.heartbeat),
            heart_beat_receive_scale=2.0,
            auto_decode=False,
        )
        self._tls = config.tls
        if config.tls:
            self.conn.set_ssl(
                for_hosts=[(host, port)], ca_certs=config.tls_ca, verify=config.tls_verify
            )
        self._cond = threading.Condition()
        self._receipts: set[str] = set()
        self._on_message = on_message
        self._on_lost = on_lost
        self._write_timeout = config.receipt_timeout
        self._heartbeat = config.heartbeat / 1000  # seconds; 0: no heart-beats
        self._nodelay = False
        self.connected = False
        self.lost = False
        self.error: str | None = None
        self.error_receipt: str | None = None
        self.conn.set_listener("kew", self)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def usable(self) -> bool:
        """Return whether frames may still be sent on this wire."""
        return self.connected and not self.lost and self.error is None

    # -- called on stomp.py's I/O thread: record and notify, never block --

    def on_connected(self, frame: stomp.utils.Frame) -> None:
        with self._cond:
            self.connected = True
            self._cond.notify_all()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self._cond:
            self._receipts.add(frame.headers.get("receipt-id", ""))
            self._cond.notify_all()

    def on_error(self, frame: stomp.utils.Frame) -> None:
        body = frame.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        message = frame.headers.get("message") or (body or "").strip() or "no reason given"
        with self._cond:
            if self.error is None:
                self.error = message
                self.error_receipt = frame.headers.get("receipt-id")
            self._cond.notify_all()
        if self.connected:
            log.warning("Artemis at %s sent ERROR: %s", self, message)

    def on_message(self, frame: stomp.utils.Frame) -> None:
        if self._on_message is not None:
            self._on_message(self, frame)

    def on_disconnected(self) -> None:
        with self._cond:
            already = self.lost
            self.lost = True
            self._cond.notify_all()
        if not already and self._on_lost is not None:
            self._on_lost()

    def on_heartbeat_timeout(self) -> None:
        log.warning("no heart-beat from Artemis at %s: connection considered lost", self)
        self.on_disconnected()

    # -- called on the caller's thread --

    def open(
        self,
        user: str | None,
        password: str | None,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Open the TCP connection and STOMP session.

        Raises ConfigurationError only for a refused login (wrong user or
        password); any other ERROR in answer to CONNECT, like a refused or
        silent socket, raises Unreachable, which callers retry.
        """
        try:
            self.conn.connect(user, password, wait=False, headers=dict(headers or {}))
        except (stomp.exception.StompException, OSError):
            why = "TCP connection refused or timed out"
            if self._tls:
                why += ", or TLS handshake failed (is the broker's certificate trusted? tls_ca)"
            raise Unreachable(f"{self}: {why}") from None
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.connected and self.error is None and not self.lost:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        if self.error is not None:
            self.abort()
            lowered = self.error.lower()
            if "security" in lowered or "password" in lowered or "user" in lowered:
                raise ConfigurationError(
                    f"login refused by broker at {self} for user {user!r}: {self.error}"
                )
            # Anything else (starting up, paging, out of connections) may pass: try again later.
            raise Unreachable(f"{self}: refused the STOMP session: {self.error}")
        if not self.connected:
            self.abort()
            why = "closed the connection" if self.lost else f"did not answer within {timeout:g}s"
            raise Unreachable(f"{self}: {why}")
        self._tune_socket()

    def _tune_socket(self) -> None:
        """Make a write to a broker that stopped reading fail instead of hanging.

        stomp.py writes with a blocking ``sendall``; a send timeout bounds it
        (plain sockets; with TLS stomp.py writes from its I/O thread).
        """
        sock = getattr(self.conn.transport, "socket", None)
        if sock is None or not self.conn.transport.blocking or not hasattr(socket, "SO_SNDTIMEO"):
            return
        seconds = self._write_timeout
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET,
                socket.SO_SNDTIMEO,
                struct.pack("ll", int(seconds), int(seconds % 1 * 1e6)),
            )

    def send(self, destination: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Write one SEND frame; raise ConnectionLost if the wire is broken."""
        self._write(lambda: self.conn.send(destination, body, headers=dict(headers)))

    def send_text(self, destination: str, text: str, headers: Mapping[str, str]) -> None:
        """Write one SEND frame without ``content-length``: Artemis stores it as a text message."""
        frame = dict(headers, destination=destination)
        self._write(lambda: self.conn.send_frame("SEND", frame, text))

    def send_many(
        self,
        frames: Sequence[tuple[str, bytes, Mapping[str, str]]],
        encoded: Sequence[bytes] | None = None,
    ) -> None:
        """Write SEND frames back to back, in writes of about ``WRITE_CHUNK`` bytes.

        ``encoded`` holds the frames already encoded by ``encode_send``, one
        per frame (the producer encodes them before its turn to send).
        Joining frames saves a system call and a TCP segment per frame, and a
        chunk leaves while the next is joined, so the broker works meanwhile.
        With TLS stomp.py's I/O thread owns the writes, so frames go one by one.
        """
        self._no_delay()
        if not self.conn.transport.blocking:
            for destination, body, headers in frames:
                self.send(destination, body, headers)
            return
        if encoded is None:
            encoded = [encode_send(*frame) for frame in frames]
        chunk: list[bytes] = []
        size = 0
        for data in encoded:
            chunk.append(data)
            size += len(data)
            if size >= WRITE_CHUNK:
                self._write_bytes(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self._write_bytes(b"".join(chunk))

    def _no_delay(self) -> None:
        """Turn Nagle's algorithm off for this (producer's) connection.

        stomp.py leaves it on: the end of a batch, with the frame that asks
        for the receipt, would then wait for the broker's delayed ACK before
        leaving. Producers write large chunks, so nothing is lost by sending
        each at once; receivers keep Nagle, which coalesces their small ACKs.
        """
        if self._nodelay:
            return
        self._nodelay = True
        sock = getattr(self.conn.transport, "socket", None)
        if sock is None:
            return
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _write_bytes(self, data: bytes) -> None:
        self._write(lambda: self.conn.transport.send(data))

    def subscribe(self, destination: str, subscription: str, headers: Mapping[str, str]) -> None:
        """Write one SUBSCRIBE frame with client-individual acks."""
        self._write(
            lambda: self.conn.subscribe(
                destination, subscription, ack="client-individual", headers=dict(headers)
            )
        )

    def ack(self, ack_id: str) -> None:
        """Write one ACK frame (no receipt: a lost ack means a redelivery)."""
        self._write(lambda: self.conn.ack(ack_id))

    def _write(self, write: Callable[[], None]) -> None:
        if not self.usable:
            raise ConnectionLost(f"connection to Artemis at {self} is closed")
        try:
            write()
        except (stomp.exception.StompException, OSError) as error:
            self.abort()
            raise ConnectionLost(
                f"connection to Artemis at {self} lost while writing ({type(error).__name__})"
            ) from None

    def wait_receipt(self, receipt: str, timeout: float, what: str) -> None:
        """Wait for ``receipt``; raise BrokerRefused or ConnectionLost (never wait longer)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while receipt not in self._receipts:
                if self.error is not None:
                    raise BrokerRefused(self.error, self.error_receipt)
                if self.lost:
                    raise ConnectionLost(
                        f"connection to Artemis at {self} lost before it confirmed {what}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            else:
                self._receipts.discard(receipt)
                return
        alive = self._heard_lately(timeout)
        self.abort()
        if alive:  # the broker is up but stores nothing for us: it is holding producers back
            raise BrokerBlocked(
                f"Artemis at {self} is up (its heart-beats arrive) but did not confirm {what} "
                f"within {timeout:g}s"
            )
        raise ConnectionLost(f"Artemis at {self} did not confirm {what} within {timeout:g}s")

    def _heard_lately(self, timeout: float) -> bool:
        """Return whether the broker's heart-beats prove it alive for most of ``timeout``.

        stomp.py drops a wire after two heart-beat periods without a frame
        (``heart_beat_receive_scale``), so a wire still up after a longer wait
        has heard from the broker all along.
        """
        return not self.lost and 0 < self._heartbeat * 2 < timeout

    def close(self, timeout: float) -> None:
        """Disconnect cleanly: DISCONNECT with a receipt, so earlier frames are handled first."""
        if self.usable:
            receipt = new_receipt()
            with contextlib.suppress(ConnectionLost, BrokerRefused):
                self._write(lambda: self.conn.send_frame("DISCONNECT", {"receipt": receipt}))
                self.wait_receipt(receipt, timeout, "the disconnection")
                with self._cond:  # Artemis closes the connection after that receipt
                    self._cond.wait_for(lambda: self.lost, 1.0)
        self.abort()

    def abort(self) -> None:
        """Close the socket at once (stomp.py's I/O thread then ends)."""
        if not self.lost:
            with contextlib.suppress(Exception):
                self.conn.transport.disconnect_socket()
        with self._cond:
            self.lost = True
            self._cond.notify_all()
