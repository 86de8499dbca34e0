"""The RabbitMQ provider over TLS (``amqps://``): a real node's TLS listener and throwaway CAs."""

from __future__ import annotations

import uuid

import pytest

from kew.errors import ConfigurationError, ConnectionLost
from kew.providers import connect
from kew.providers.base import DeliveryOptions
from kew.providers.rabbitmq import parse_url
from tests.harness.rabbitmq.tls import make_authority

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def queue() -> str:
    return f"test.tls.{uuid.uuid4().hex[:12]}"


def round_trip(provider, queue: str) -> bytes:
    """Send one confirmed message to ``queue`` and return what a receiver gets."""
    with provider.producer() as producer:
        producer.send(queue, b"over tls", DeliveryOptions(message_id="tls-1"))
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None and delivery.message_id == "tls-1"
        delivery.ack()
        return delivery.payload


def test_a_confirmed_message_goes_over_tls_with_the_nodes_ca(rabbitmq_tls_server, queue):
    provider = connect(rabbitmq_tls_server.tls_url, tls_ca=str(rabbitmq_tls_server.ca_path))
    with provider.producer() as producer:
        producer.send(queue, b"over tls", DeliveryOptions(message_id="tls-1"))
        # the broker's side: the producer's connection, as every one open, is a TLS one
        listed = rabbitmq_tls_server.ctl("list_connections", "ssl", "--silent").split()
        assert listed and set(listed) == {"true"}
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None and delivery.payload == b"over tls"
        delivery.ack()
    provider.close()


def test_a_certificate_from_another_ca_is_refused_with_a_clear_error(rabbitmq_tls_server, tmp_path):
    other = make_authority(tmp_path / "other")
    for options in ({"tls_ca": str(other.cert)}, {}):  # another CA; the system's CAs
        provider = connect(rabbitmq_tls_server.tls_url, **options)
        with pytest.raises(ConnectionLost) as raised:
            provider.producer()
        text = str(raised.value)
        assert "CERTIFICATE_VERIFY_FAILED" in text and "tls_ca" in text
        assert f"127.0.0.1:{rabbitmq_tls_server.tls_port}" in text
        assert raised.value.__cause__ is None and raised.value.__context__ is None
        with pytest.raises(ConnectionLost, match="tls_verify=false"):
            provider.receiver("never.declared")
        provider.close()


def test_with_tls_verify_off_any_certificate_is_accepted(rabbitmq_tls_server, queue, tmp_path):
    other = make_authority(tmp_path / "other")
    url = rabbitmq_tls_server.tls_url
    provider = connect(url, tls_ca=str(other.cert), tls_verify=False)
    assert round_trip(provider, queue) == b"over tls"
    provider.close()
    provider = connect(f"{url}?tls_verify=false")  # the system's CAs, unchecked
    assert round_trip(provider, queue) == b"over tls"
    provider.close()


def test_a_node_without_tls_on_its_port_is_passed_over_for_the_next(rabbitmq_tls_server, queue):
    server = rabbitmq_tls_server
    plain, tls = f"127.0.0.1:{server.port}", f"127.0.0.1:{server.tls_port}"
    url = f"amqps://{server.user}:{server.password}@{plain},{tls}/"
    provider = connect(url, tls_ca=str(server.ca_path))
    assert round_trip(provider, queue) == b"over tls"
    with pytest.raises(ConnectionLost, match="TLS handshake failed"):
        connect(url.replace(f",{tls}", ""), tls_ca=str(server.ca_path)).producer()
    provider.close()


@pytest.mark.parametrize("contents", [None, "not a certificate\n", ""])
def test_a_tls_ca_that_is_no_ca_file_is_a_configuration_error(tmp_path, contents):
    path = tmp_path / "ca.pem"
    if contents is not None:
        path.write_text(contents)
    with pytest.raises(ConfigurationError, match=r"tls_ca=.*ca\.pem.* is not a CA certificate"):
        parse_url("amqps://u:p@rabbit/", tls_ca=str(path))
    with pytest.raises(ConfigurationError, match="tls_ca"):
        connect(f"amqps://u:p@rabbit/?tls_ca={path}")


def test_a_good_tls_ca_parses_without_connecting(tmp_path):
    authority = make_authority(tmp_path / "ca")
    config = parse_url("amqps://u:p@rabbit/", tls_ca=authority.cert, tls_verify="true")
    assert (config.tls, config.tls_ca, config.tls_verify) == (True, str(authority.cert), True)
    assert config.hosts == (("rabbit", 5671),)
