"""An ERROR frame in answer to CONNECT: a refused login is permanent, anything else is not."""

from __future__ import annotations

import socket
import threading

import pytest

from kew.errors import ConfigurationError, ConnectionLost
from kew.providers.artemis.config import parse_url
from kew.providers.artemis.connection import FailoverConnection


class RefusingBroker:
    """A TCP server that answers every CONNECT with one ERROR frame, then closes."""

    def __init__(self, message: str):
        self.message = message
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                data = b""
                while b"\x00" not in data:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                client.sendall(f"ERROR\nmessage:{self.message}\n\n\x00".encode())

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def refusing(request):
    broker = RefusingBroker(request.param)
    yield broker
    broker.close()


@pytest.mark.parametrize("refusing", ["AMQ229119: server is starting"], indirect=True)
def test_other_connect_errors_are_transient(refusing):
    connection = FailoverConnection(parse_url(f"artemis://u:p@127.0.0.1:{refusing.port}"))
    with pytest.raises(ConnectionLost, match="server is starting"):
        connection.ensure()


@pytest.mark.parametrize(
    "refusing", ["Security Error occurred: User name [u] or password is invalid"], indirect=True
)
def test_a_refused_login_is_a_configuration_error(refusing):
    connection = FailoverConnection(parse_url(f"artemis://u:p@127.0.0.1:{refusing.port}"))
    with pytest.raises(ConfigurationError, match="login refused"):
        connection.ensure()
