"""The RabbitMQ provider's settings, encoding and delay routing, checked without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kew.errors import ConfigurationError
from kew.providers import connect
from kew.providers.base import Capability, DeliveryOptions, Outgoing
from kew.providers.rabbitmq import RabbitMQProvider, delays, parse_url
from kew.providers.rabbitmq.receiver import properties_of


def test_one_node_with_credentials_options_and_the_default_vhost():
    config = parse_url("amqp://kew:s3cret@rabbit.example:5673/?heartbeat=10&confirm_timeout=2")
    assert config.hosts == (("rabbit.example", 5673),)
    assert (config.user, config.password, config.vhost) == ("kew", "s3cret", "/")
    assert (config.heartbeat, config.confirm_timeout) == (10, 2.0)
    assert not config.tls


def test_several_nodes_for_failover_default_ports_and_a_vhost():
    config = parse_url("amqp://u:p@node1,node2:5673,[::1]/imports")
    assert config.hosts == (("node1", 5672), ("node2", 5673), ("::1", 5672))
    assert config.vhost == "imports"
    assert parse_url("amqps://u:p@node1/%2F").hosts == (("node1", 5671),)
    assert parse_url("amqps://u:p@node1/%2F").tls
    assert parse_url("amqp://u:p@node1/%2F").vhost == "/"


def test_queue_arguments_come_from_the_query_and_from_keywords():
    config = parse_url(
        "amqp://h/?x-delivery-limit=20&x-dead-letter-exchange=dlx",
        queue_arguments={"x-max-length": 1000},
    )
    assert config.work_queue_arguments("q") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "dlx",
        "x-max-length": 1000,
    }
    assert parse_url("amqp://h/", queue_type="classic").work_queue_arguments("q") == {
        "x-queue-type": "classic"
    }


@pytest.mark.parametrize(
    ("url", "options", "text"),
    [
        ("amqp://h/?heartbeet=5", {}, "did you mean 'heartbeat'"),
        ("amqp://h/?confirm_timeout=0", {}, "confirm_timeout"),
        ("amqp://h/", {"queue_type": "stream"}, "queue type"),
        ("amqp://h/?x-queue-type=classic", {}, "queue_type="),
        ("amqp://h/?x-delivery-limit=5", {}, "drops messages"),
        ("amqp://h/?delivery_limit=5&x-dead-letter-exchange=dlx", {}, "leave those"),
        ("amqp://h/?delivery_limit=5&x-overflow=drop-head", {}, "leave those"),
        ("amqp://h/?delivery_limit=5&x-dead-letter-strategy=at-most-once", {}, "leave those"),
        ("amqp://h/?delivery_limit=-1", {}, "delivery_limit"),
        ("amqp://h/", {"queue_arguments": {"max-length": 3}}, "must start with 'x-'"),
        ("amqp://h:0/", {}, "port 0"),
        ("amqp:///", {}, "names no host"),
        ("amqp://h/a/b", {}, "one virtual host"),
        ("amqp://h/?delay_levels=41", {}, "delay_levels"),
        ("amqp://h/", {"delay_prefix": "kew.#"}, "delay_prefix"),
        ("rabbit://h/", {}, "amqp://"),
    ],
)
def test_bad_urls_and_options_are_configuration_errors(url, options, text):
    with pytest.raises(ConfigurationError, match=text.replace("(", r"\(")):
        parse_url(url, **options)


def test_connect_picks_the_provider_by_scheme_without_connecting():
    provider = connect("amqp://u:secret@127.0.0.1:1/")
    assert isinstance(provider, RabbitMQProvider)
    assert "secret" not in repr(provider)


def test_reserved_names_long_ids_and_unschedulable_queues_are_refused():
    provider = RabbitMQProvider("amqp://h/")
    with pytest.raises(ConfigurationError, match="reserved by RabbitMQ"):
        provider.validate(Outgoing("q", b"", DeliveryOptions(properties={"x-death": "1"})))
    with pytest.raises(ConfigurationError, match="255"):
        provider.validate(Outgoing("q", b"", DeliveryOptions(message_id="m" * 256)))
    soon = datetime.now(UTC) + timedelta(seconds=5)
    with pytest.raises(ConfigurationError, match="'\\*' or '#'"):
        provider.validate(Outgoing("a.*.b", b"", DeliveryOptions(deliver_at=soon)))
    far = datetime.now(UTC) + timedelta(days=60)
    with pytest.raises(ConfigurationError, match="delay_levels=32"):
        provider.validate(Outgoing("q", b"", DeliveryOptions(deliver_at=far)))
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        provider.validate(Outgoing("q", b"", DeliveryOptions(deliver_at=datetime.now())))


def test_a_delay_is_routed_by_its_binary_digits_and_rounded_up():
    config = parse_url("amqp://h/?delay_levels=4")
    assert delays.routing_key("imports.done", 0b1011, config) == "1.0.1.1.imports.done"
    assert delays.entry_exchange(config) == "kew.delay.3"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert delays.delay_ms(now + timedelta(microseconds=1), now) == 1
    assert delays.delay_ms(now - timedelta(seconds=1), now) == 0


def test_rabbitmq_headers_are_not_application_properties():
    headers = {"tenant": "lab", "x-delivery-count": 2, "x-death": [], "raw": b"caf\xc3\xa9"}
    assert properties_of(headers) == {"tenant": "lab", "raw": "café"}


def test_a_delivery_limit_gives_each_queue_a_dead_letter_queue():
    config = parse_url("amqp://h/?delivery_limit=10")
    assert config.dead_letter_queue("imports") == "imports.dead"
    assert config.work_queue_arguments("imports") == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 10,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "imports.dead",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert Capability.DEAD_LETTER_ADDRESS in RabbitMQProvider(config).capabilities
    assert Capability.DEAD_LETTER_ADDRESS not in RabbitMQProvider("amqp://h/").capabilities
