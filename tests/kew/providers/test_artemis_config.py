"""The Artemis provider's settings and headers, checked without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kew.errors import ConfigurationError
from kew.providers import connect
from kew.providers.artemis import ArtemisProvider, parse_url
from kew.providers.artemis.producer import send_headers
from kew.providers.artemis.receiver import properties_of, window_for
from kew.providers.base import DeliveryOptions


def test_one_host_with_credentials_and_options():
    config = parse_url("artemis://kew:s3cret@broker.example:61613/?heartbeat=5000&tls=true")
    assert config.hosts == (("broker.example", 61613),)
    assert (config.user, config.password) == ("kew", "s3cret")
    assert config.heartbeat == 5000
    assert config.tls


def test_several_hosts_for_failover_and_a_default_port():
    config = parse_url("artemis://u:p@host1:61613,host2:61714,host3/")
    assert config.hosts == (("host1", 61613), ("host2", 61714), ("host3", 61613))
    assert config.where == "host1:61613, host2:61714, host3:61613"


def test_ssl_scheme_means_tls_and_ipv6_hosts_parse():
    config = parse_url("artemis+ssl://u:p@[::1]:61617")
    assert config.tls
    assert config.hosts == (("::1", 61617),)


def test_percent_encoded_credentials_are_decoded():
    config = parse_url("artemis://us%40er:p%3Ass%2Fw@h:1")
    assert (config.user, config.password) == ("us@er", "p:ss/w")


def test_keyword_options_override_the_query():
    config = parse_url(
        "artemis://h/?receipt_timeout=3", receipt_timeout=7.5, window=-1, tls_verify=False
    )
    assert config.receipt_timeout == 7.5
    assert config.window == -1
    assert config.tls_verify is False


def test_unknown_option_gets_a_hint():
    with pytest.raises(ConfigurationError, match="did you mean 'heartbeat'"):
        parse_url("artemis://h/?heartbeats=1000")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("artemis://u:p@host:notaport/", "bad host:port 'host:notaport'"),
        ("artemis://u:p@host:99999/", "bad host:port"),
        ("artemis://u:p@host1:61613,,host2/", "empty host"),
        ("artemis:///", "names no host"),
        ("artemis://host/queue", "has a path"),
        ("artemis://host/?heartbeat=soon", "bad value for Artemis option 'heartbeat'"),
        ("artemis://host/?heartbeat=100", "at least 500 ms"),
        ("artemis://host/?tls=maybe", "not a boolean"),
        ("artemis://host/?window=-5", "window=-5"),
    ],
)
def test_malformed_urls_say_what_to_fix(url, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        connect(url)


def test_password_never_appears_in_errors_or_repr():
    with pytest.raises(ConfigurationError) as caught:
        connect("artemis://kew:hunter2@host:bad/")
    assert "hunter2" not in str(caught.value)
    provider = connect("artemis://kew:hunter2@host:61613/")
    assert isinstance(provider, ArtemisProvider)
    assert "hunter2" not in repr(provider)
    assert "hunter2" not in repr(provider.config)


def test_send_headers_make_durable_anycast_messages_with_ids_and_schedule():
    due = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    headers = send_headers(
        "q",
        DeliveryOptions(deliver_at=due, message_id="m-1", properties={"a": "x:y"}),
        max_bytes=65536,
    )
    assert headers["persistent"] == "true"
    assert headers["destination-type"] == "ANYCAST"
    assert headers["AMQ_SCHEDULED_TIME"] == str(int(due.timestamp() * 1000))
    assert headers["_AMQ_DUPL_ID"] == headers["kew-message-id"] == "m-1"
    assert headers["a"] == "x:y"
    assert send_headers("q", DeliveryOptions(durable=False), max_bytes=99)["persistent"] == "false"


@pytest.mark.parametrize(
    "name",
    [
        "priority",
        "expires",
        "persistent",
        "_AMQ_DUPL_ID",
        "AMQ_SCHEDULED_TIME",
        "receipt",
        "kew-message-id",
    ],
)
def test_properties_that_would_steer_the_broker_are_refused(name):
    with pytest.raises(ConfigurationError, match=f"{name!r} is reserved"):
        send_headers("q", DeliveryOptions(properties={name: "1"}), max_bytes=65536)


def test_oversized_headers_and_nul_characters_are_refused_before_sending():
    with pytest.raises(ConfigurationError, match="max_header_bytes=1000"):
        send_headers("q", DeliveryOptions(properties={"big": "x" * 2000}), max_bytes=1000)
    with pytest.raises(ConfigurationError, match="NUL"):
        send_headers("q", DeliveryOptions(message_id="a\x00b"), max_bytes=1000)
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        send_headers("q", DeliveryOptions(deliver_at=datetime(2030, 1, 1)), max_bytes=1000)


def test_received_headers_become_properties_without_broker_bookkeeping():
    headers = {
        "subscription": "s",
        "message-id": "1,2",
        "ack": "1,2",
        "destination": "q",
        "redelivered": "false",
        "persistent": "true",
        "priority": "4",
        "expires": "0",
        "timestamp": "1",
        "content-length": "3",
        "receipt": "r",
        "destination-type": "ANYCAST",
        "_AMQ_DUPL_ID": "m",
        "__AMQ_CID": "c",
        "kew-message-id": "m",
        "tenant": "lab",
        "kew-delivery-count": "2",
    }
    assert properties_of(headers) == {"tenant": "lab", "kew-delivery-count": "2"}


def test_prefetch_one_means_window_zero():
    config = parse_url("artemis://h/")
    assert window_for(1, config) == 0
    assert window_for(10, config) == 10 * 1024
    assert window_for(10, parse_url("artemis://h/?window=-1")) == -1
    with pytest.raises(ConfigurationError, match="prefetch"):
        window_for(0, config)


def test_the_provider_is_built_from_keyword_options_like_a_django_backend():
    provider = ArtemisProvider(**{"url": "artemis://u:p@h:1/", "heartbeat": 5000})
    assert provider.config.heartbeat == 5000
    assert ArtemisProvider(parse_url("artemis://h")).config.hosts == (("h", 61613),)
    with pytest.raises(ConfigurationError, match="in the ArtemisConfig"):
        ArtemisProvider(parse_url("artemis://h"), heartbeat=5000)
