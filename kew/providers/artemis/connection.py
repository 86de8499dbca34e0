"""A STOMP connection to Artemis that comes back: failover across hosts, reconnection.

stomp.py never reconnects after a lost connection; ``FailoverConnection.ensure`` does,
on the caller's thread, opening a new ``Wire`` (the next host first, with
backoff between rounds). Each wire has a generation number, so frames and
acks that belong to an earlier connection can be recognised and dropped.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from kew.errors import ConfigurationError, ConnectionLost
from kew.providers.artemis.config import ArtemisConfig
from kew.providers.artemis.wire import MessageCallback, Unreachable, Wire

log = logging.getLogger(__name__)


class FailoverConnection:
    """A STOMP connection that comes back: failover across hosts, reconnection with backoff.

    ``ensure`` returns a usable ``Wire``, opening one if needed. The first
    connection tries each host once, so a wrong URL fails fast; after a
    connection was lost it tries ``reconnect_attempts`` rounds, starting
    with the next host and waiting ``reconnect_delay`` (doubling up to
    ``reconnect_delay_max``) between rounds. Not thread-safe: one owner.
    """

    def __init__(
        self,
        config: ArtemisConfig,
        *,
        on_message: MessageCallback | None = None,
        on_lost: Callable[[], None] | None = None,
        client_id: str | None = None,
    ):
        self.config = config
        self._connect_headers = {} if client_id is None else {"client-id": client_id}
        self.wire: Wire | None = None
        self._on_message = on_message
        self._on_lost = on_lost
        self._generations = itertools.count(1)
        self._host_index = 0
        self._was_connected = False
        self.closed = False

    def ensure(self) -> Wire:
        """Return a usable wire; raise ConnectionLost naming the hosts if none can be had."""
        if self.closed:
            raise ConfigurationError("this Artemis producer or receiver is closed")
        if self.wire is not None and self.wire.usable:
            return self.wire
        if self.wire is not None:
            log.warning("connection to Artemis at %s lost; reconnecting", self.wire)
            self.wire.abort()
            self.wire = None
            self._host_index += 1
        rounds = max(1, self.config.reconnect_attempts) if self._was_connected else 1
        problems: list[str] = []
        for round_ in range(rounds):
            if round_:
                delay = self.config.reconnect_delay * 2 ** (round_ - 1)
                time.sleep(min(delay, self.config.reconnect_delay_max))
            for offset in range(len(self.config.hosts)):
                index = (self._host_index + offset) % len(self.config.hosts)
                try:
                    self.wire = self._open(*self.config.hosts[index])
                except Unreachable as error:
                    problems.append(str(error))
                    continue
                self._host_index = index
                if self._was_connected:
                    log.info("reconnected to Artemis at %s", self.wire)
                self._was_connected = True
                return self.wire
        tries = f" ({rounds} rounds)" if rounds > 1 else ""
        last = problems[-1]
        if len(self.config.hosts) == 1:
            last = last.partition(": ")[2]  # the host is named already
        raise ConnectionLost(f"cannot reach Artemis at {self.config.where}{tries}: {last}")

    def _open(self, host: str, port: int) -> Wire:
        wire = Wire(
            self.config, host, port, next(self._generations), self._on_message, self._on_lost
        )
        wire.open(
            self.config.user,
            self.config.password,
            self.config.connect_timeout,
            self._connect_headers,
        )
        return wire

    def close(self) -> None:
        """Disconnect cleanly (waiting for the broker's receipt) and stay closed."""
        self.closed = True
        if self.wire is not None:
            self.wire.close(self.config.receipt_timeout)
            self.wire = None
