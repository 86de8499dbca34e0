"""Opening a pika connection with failover across the URL's nodes, and mapping pika's errors.

A ``BlockingConnection`` belongs to the thread that uses it; the producer
owns one on the caller's thread, each receiver one on its I/O thread.
"""

from __future__ import annotations

import logging
import ssl
import time

import pika
import pika.exceptions

from kew.errors import ConfigurationError, ConnectionLost, KewError, ProviderError
from kew.providers.rabbitmq.config import RabbitMQConfig

log = logging.getLogger(__name__)

# What a lost connection or channel looks like in pika: recoverable, try again later.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosed,
    ConnectionError,
    OSError,
)
# AMQP reply codes that say the request itself is wrong (sending it again cannot help).
REFUSALS = {403: "access refused", 404: "not found", 406: "precondition failed"}


def parameters(config: RabbitMQConfig, host: str, port: int) -> pika.ConnectionParameters:
    """Return pika's connection parameters for one node."""
    tls = None
    if config.tls:
        context = ssl.create_default_context(cafile=config.tls_ca)
        if not config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        tls = pika.SSLOptions(context, host)
    return pika.ConnectionParameters(
        host=host,
        port=port,
        virtual_host=config.vhost,
        credentials=pika.PlainCredentials(config.user, config.password),
        heartbeat=config.heartbeat,
        socket_timeout=config.connect_timeout,
        stack_timeout=config.connect_timeout * 2,
        # None: a connection blocked by an alarm stays open (the producer waits it out,
        # FlowControl); a lost broker is found by heartbeats and the confirm timeout.
        blocked_connection_timeout=None,
        connection_attempts=1,
        ssl_options=tls,
        client_properties={"connection_name": "kew"},
    )


def open_connection(
    config: RabbitMQConfig, *, first: int = 0, rounds: int = 1
) -> tuple[pika.BlockingConnection, int]:
    """Connect to the first node that answers, from ``first`` on; return it and its index.

    ``rounds`` rounds over every node, waiting ``reconnect_delay`` (doubling
    up to ``reconnect_delay_max``) between rounds. A refused login is a
    ConfigurationError at once; no node answering is ConnectionLost.
    """
    problems: list[str] = []
    for round_ in range(max(1, rounds)):
        if round_:
            time.sleep(min(config.reconnect_delay * 2 ** (round_ - 1), config.reconnect_delay_max))
        for offset in range(len(config.hosts)):
            index = (first + offset) % len(config.hosts)
            host, port = config.hosts[index]
            try:
                return pika.BlockingConnection(parameters(config, host, port)), index
            except pika.exceptions.ProbableAuthenticationError as error:
                raise ConfigurationError(
                    f"RabbitMQ at {host}:{port} refused user {config.user!r}: {error}"
                ) from None
            except pika.exceptions.ProbableAccessDeniedError as error:
                raise ConfigurationError(
                    f"RabbitMQ at {host}:{port} refused virtual host {config.vhost!r} "
                    f"to user {config.user!r}: {error}"
                ) from None
            except CONNECTION_ERRORS as error:
                problems.append(f"{host}:{port}: {describe(error)}")
    tries = f" ({rounds} rounds)" if rounds > 1 else ""
    raise ConnectionLost(f"cannot reach RabbitMQ at {config.where}{tries}: {problems[-1]}")


def declare_work_queue(channel, config: RabbitMQConfig, queue: str) -> None:
    """Declare ``queue`` (and first its dead-letter queue, with a delivery limit)."""
    if config.delivery_limit is not None:
        declare_dead_letter_queue(channel, config, queue)
    channel.queue_declare(queue, durable=True, arguments=config.work_queue_arguments(queue))


def declare_dead_letter_queue(channel, config: RabbitMQConfig, queue: str) -> str:
    """Declare the dead-letter queue of ``queue``; return its name."""
    name = config.dead_letter_queue(queue)
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    return name


class FlowControl:
    """Whether RabbitMQ blocks a connection's publishes (``connection.blocked``), and why.

    RabbitMQ blocks publishing connections while a memory or disk alarm is
    raised: it stops reading from them, so confirms stop coming. pika calls
    ``blocked``/``unblocked`` on the connection's own thread.
    """

    def __init__(self) -> None:
        self.reason: str | None = None  # None: not blocked

    def watch(self, connection: pika.BlockingConnection) -> None:
        """Follow ``connection``'s blocked and unblocked notifications."""
        self.reason = None
        connection.add_on_connection_blocked_callback(self.blocked)
        connection.add_on_connection_unblocked_callback(self.unblocked)

    def blocked(self, connection, frame) -> None:
        self.reason = str(getattr(frame.method, "reason", "") or "a resource alarm")
        log.debug("RabbitMQ blocked a publishing connection: %s", self.reason)

    def unblocked(self, connection, frame) -> None:
        self.reason = None
        log.debug("RabbitMQ unblocked a publishing connection")


def describe(error: BaseException) -> str:
    """Return a short text for a pika error (its repr is often empty), with a hint for TLS."""
    text = str(error) or repr(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        text += (
            " (the node's certificate was refused: is it signed by the CA in tls_ca "
            "and made for this host name? tls_verify=false skips the check)"
        )
    elif isinstance(error, ssl.SSLError):
        text += " (TLS handshake failed: is this port the node's TLS listener?)"
    return f"{type(error).__name__}: {text}"


def translate(error: BaseException, what: str) -> KewError:
    """Return Kew's error for a pika error raised while doing ``what``."""
    if isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code in REFUSALS:
        return ConfigurationError(f"RabbitMQ refused {what}: {error.reply_text}")
    if isinstance(error, CONNECTION_ERRORS):
        return ConnectionLost(f"connection to RabbitMQ lost during {what}: {describe(error)}")
    return ProviderError(f"RabbitMQ failed during {what}: {describe(error)}")


def close_quietly(connection: pika.BlockingConnection | None, *, blocked: bool = False) -> None:
    """Close ``connection`` if it is open; never raises, never waits on a ``blocked`` one."""
    if connection is None:
        return
    try:
        if connection.is_open and blocked:
            abort(connection)
        elif connection.is_open:
            connection.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close
        log.debug("closing a RabbitMQ connection failed", exc_info=True)


def abort(connection: pika.BlockingConnection) -> None:
    """Drop ``connection``'s socket without the closing handshake.

    The broker reads nothing from a connection it blocked (an alarm), so it
    would never answer a Connection.Close: ``close()`` would wait until the
    alarm clears. pika has no public abort; this is what its own blocked-
    connection timeout does.
    """
    connection._impl._terminate_stream(None)
    deadline = time.monotonic() + 1.0
    while not connection.is_closed and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)  # runs the socket's close
