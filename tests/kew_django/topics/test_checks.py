"""The system check kew.E030: a subscriber's topic needs a provider with topics."""

from __future__ import annotations

from kew.providers.base import Capability
from kew.providers.memory import MemoryProvider
from kew_django import Topic, subscriber
from kew_django.topics import check_topics
from tests.kew_django.topics.conftest import collector


class NoTopics(MemoryProvider):
    """A memory provider that cannot do topics."""

    capabilities = MemoryProvider.capabilities - {Capability.TOPICS}


def test_a_subscriber_on_a_provider_without_topics_is_an_error(consumers, providers, settings):
    settings.KEW = {
        "PROVIDERS": {
            "default": {"BACKEND": "kew.providers.memory.MemoryProvider"},
            "plain": {"BACKEND": f"{__name__}.NoTopics"},
        }
    }
    subscriber(Topic("fine"), name="a")(collector([]))
    assert check_topics() == []
    subscriber(Topic("stuck", provider="plain"), name="b")(collector([]))
    (error,) = check_topics()
    assert error.id == "kew.E030"
    assert "'stuck'" in error.msg and "'plain'" in error.msg and "NoTopics" in error.msg
