"""Settings that used to crash at start (or later) are system-check errors with an id and hint."""

from __future__ import annotations

import pytest

from kew_django.checks import check_settings


@pytest.mark.parametrize(
    ("kew", "expected", "text"),
    [
        ({"PROVIDERS": {"default": {"URL": "artemis://[::1"}}}, "kew.E008", "Invalid IPv6"),
        ({"PROVIDERS": {"default": {"URL": "artemis://u:pw@[::1"}}}, "kew.E008", "IPv6"),
        ({"PROVIDERS": {"default": {"URL": "database://?lease=nan"}}}, "kew.E008", "finite"),
        ({"PROVIDERS": {"default": {"URL": "database://?lease=inf"}}}, "kew.E008", "finite"),
        ({"PROVIDERS": {"default": {"URL": "database://?leese=1"}}}, "kew.E008", "'lease'"),
        ({"PROVIDERS": {"default": {"URL": "database://?poll_interval=0"}}}, "kew.E008", "lease"),
        ({"PROVIDERS": {"default": {"URL": "database://nope"}}}, "kew.E008", "unknown database"),
        (
            {"PROVIDERS": {"default": {"URL": "database://", "OPTIONS": {"lease": "soon"}}}},
            "kew.E008",
            "seconds",
        ),
        (
            {"PROVIDERS": {"default": {"URL": "database://", "OPTIONS": {"lifetime": 3}}}},
            "kew.E008",
            "lifetime",
        ),
        ({"PROVIDERS": {"default": {"URL": "artemis://h?heartbeat=abc"}}}, "kew.E008", "heartbeat"),
        (
            {"PROVIDERS": {"default": {"URL": "artemis://h?connect_timeout=0"}}},
            "kew.E008",
            "connect_timeout",
        ),
        (
            {"PROVIDERS": {"default": {"URL": "artemis://h?receipt_timeout=0"}}},
            "kew.E008",
            "receipt_timeout",
        ),
        ({"PROVIDERS": {"default": {"URL": "amqp://u:pw@h?heartbeet=5"}}}, "kew.E008", "heartbeat"),
        ({"PROVIDERS": {"default": {"URL": "amqp://u:pw@h:0/"}}}, "kew.E008", "port 0"),
        (
            {"PROVIDERS": {"default": {"URL": "amqp://h/", "OPTIONS": {"queue_type": "stream"}}}},
            "kew.E008",
            "queue type",
        ),
        (
            {"PROVIDERS": {"default": {"URL": "amqps://u:pw@h/?tls_ca=/nonexistent/ca.pem"}}},
            "kew.E008",
            "tls_ca",
        ),
        (
            {
                "PROVIDERS": {
                    "default": {
                        "BACKEND": "kew.providers.memory.MemoryProvider",
                        "OPTIONS": {"size": 3},
                    }
                }
            },
            "kew.E008",
            "TypeError",
        ),
        ({"RELAY": 5}, "kew.E001", "KEW['RELAY'] must be a dict"),
        ({"CONSUMERS": ["x"]}, "kew.E001", "KEW['CONSUMERS'] must be a dict"),
        ({"RELAY": {"POLL_INTERVAL": 0}}, "kew.E007", "positive"),
        ({"RELAY": {"POLL_INTERVAL": float("nan")}}, "kew.E007", "positive"),
        ({"CONSUMERS": {"POLL_INTERVAL": 0.0}}, "kew.E007", "positive"),
        ({"CONSUMERS": {"BROKER_DEAD_LETTERS": 3}}, "kew.E007", "must name a queue"),
        ({"CONSUMERS": {"MAX_CRASHES": 0}}, "kew.E007", "at least 1"),
        ({"CONSUMERS": {"MAX_CRASHES": 2.5}}, "kew.E007", "whole number"),
        ({"CONSUMERS": {"RETRY": "soon"}}, "kew.E007", "not a retry schedule"),
    ],
)
def test_bad_settings_are_check_errors_with_an_id_and_a_hint(settings, kew, expected, text):
    settings.KEW = kew
    messages = check_settings()
    assert [m.id for m in messages] == [expected]
    (message,) = messages
    assert text in message.msg and message.hint
    assert "pw" not in message.msg


def test_a_good_amqp_url_passes_without_connecting(settings):
    settings.KEW = {"PROVIDERS": {"default": {"URL": "amqp://kew:pw@127.0.0.1:1,127.0.0.1:2/"}}}
    assert check_settings() == []
