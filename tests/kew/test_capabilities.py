from datetime import timedelta

import pytest

from kew import ConfigurationError, Message, QueueSource, UnsupportedCapability, utcnow
from kew.providers.base import Capability, DeliveryOptions
from kew.providers.memory import MemoryProvider


def plain_provider() -> MemoryProvider:
    return MemoryProvider(capabilities=frozenset())


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        (Message("x", deliver_at=utcnow() + timedelta(seconds=1)), "scheduled delivery"),
        (Message("x", message_id="id-1"), "message ids"),
        (Message("x", properties={"a": "b"}), "message properties"),
        (Message("x", delivery_count=2), "message properties"),  # the count travels as one
    ],
)
def test_unsupported_capability_fails_before_anything_is_sent(message, missing):
    provider = plain_provider()
    with pytest.raises(UnsupportedCapability, match=missing):
        QueueSource(provider, "q").send_message(message)
    assert provider.pending("q") == 0


def test_capabilities_compose():
    provider = MemoryProvider(
        capabilities=frozenset({Capability.SCHEDULED_DELIVERY, Capability.MESSAGE_ID})
    )
    due = utcnow() + timedelta(seconds=5)
    QueueSource(provider, "q").send_message(Message("x", deliver_at=due, message_id="m"))
    assert provider.pending("q") == 1
    with pytest.raises(UnsupportedCapability):
        provider.require(DeliveryOptions(deliver_at=due, properties={"a": "b"}))


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a:b", "x" * 200, "name\n", "a\nb"])
def test_bad_property_names_are_refused(name):
    with pytest.raises(ConfigurationError, match="bad property name"):
        MemoryProvider().require(DeliveryOptions(properties={name: "v"}))


def test_property_values_must_be_strings():
    with pytest.raises(ConfigurationError, match="must be a string"):
        MemoryProvider().require(DeliveryOptions(properties={"n": 3}))


def test_browsing_an_unable_provider_says_so():
    from kew.providers.base import Provider

    class Minimal(Provider):
        def producer(self):
            raise NotImplementedError

        def receiver(self, queue, *, prefetch=1):
            raise NotImplementedError

    with pytest.raises(UnsupportedCapability, match="cannot browse"):
        list(Minimal().browse("q"))


def test_only_artemis_declares_a_dead_letter_address():
    from kew.providers.artemis import ArtemisProvider

    artemis = ArtemisProvider("artemis://localhost:61613")  # connects only when asked to
    assert Capability.DEAD_LETTER_ADDRESS in artemis.capabilities
    assert Capability.DEAD_LETTER_ADDRESS not in MemoryProvider().capabilities
