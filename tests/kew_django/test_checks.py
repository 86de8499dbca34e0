"""System checks: bad KEW settings and consumer declarations are caught at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from kew_django.checks import check_broker_reachable, check_consumers, check_settings
from kew_django.errors import KewImproperlyConfigured
from kew_django.providers import ProviderNotConfigured, build_provider, get_provider
from kew_django.workers.registry import ConsumerRegistry, ConsumerSpec, consumer


def ids(messages) -> list[str]:
    return [m.id for m in messages]


@pytest.mark.parametrize(
    ("kew", "expected", "text"),
    [
        ({"PROVIDERS": {"default": {"URL": "database://"}}}, [], ""),
        (
            {"PROVIDERS": {"default": {"URL": "artmis://u:secret@h:61613"}}},
            ["kew.E002"],
            "did you mean 'artemis'",
        ),
        (
            {"PROVIDERS": {"default": {"BACKEND": "kew.providers.memory.MemoryProvidr"}}},
            ["kew.E003"],
            "did you mean 'kew.providers.memory.MemoryProvider'",
        ),
        ({"PROVIDERS": {"other": {"URL": "database://"}}}, ["kew.E001"], "'default'"),
        ({"PROVIDERS": {"default": {}}}, ["kew.E001"], "either 'URL' or 'BACKEND'"),
        ({"PROVIDER": {}}, ["kew.E001"], "did you mean 'PROVIDERS'"),
        ({"RELAY": {"RETENTION": "a week"}}, ["kew.E007"], "not an interval"),
        ({"RELAY": {"BATCH_SIZE": 0}}, ["kew.E007"], "positive"),
        ({"CONSUMERS": {"CONCURENCY": 2}}, ["kew.E007"], "did you mean 'CONCURRENCY'"),
        ({"CONSUMERS": {"SHUTDOWN_GRACE": 0}}, ["kew.E007"], "terminationGracePeriodSeconds"),
        ({"CONSUMERS": {"SHUTDOWN_GRACE": "30s"}}, ["kew.E007"], "positive number"),
    ],
)
def test_settings_checks(settings, kew, expected, text):
    settings.KEW = kew
    messages = check_settings()
    assert ids(messages) == expected
    assert text in " ".join(f"{m.msg} {m.hint}" for m in messages)
    assert "secret" not in " ".join(m.msg for m in messages)


def test_memory_provider_in_production_is_a_warning(settings):
    settings.KEW = {"PROVIDERS": {"default": {"URL": "memory://"}}}
    settings.DEBUG = False
    assert ids(check_settings()) == ["kew.W001"]
    settings.DEBUG = True
    assert ids(check_settings()) == []


def test_unreachable_broker_is_an_error_at_deploy(settings):
    settings.KEW = {"PROVIDERS": {"default": {"URL": "artemis://u:p@127.0.0.1:9"}}}
    (message,) = check_broker_reachable()
    assert message.id == "kew.E006" and "unreachable" in message.msg


def test_reachable_database_provider_passes_at_deploy(settings, transactional_db):
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    assert check_broker_reachable() == []


def test_consumers_registered_twice_and_bad_retries(consumers):
    @consumers.consumer("orders")
    def first(data): ...

    @consumers.consumer("orders")
    def second(data): ...

    @consumers.consumer("mail", retry="10s soon")
    def mail(data): ...

    messages = check_consumers()
    assert ids(messages) == ["kew.E004", "kew.E005"]
    assert "first" in messages[0].msg and "second" in messages[0].msg
    with pytest.raises(ImproperlyConfigured, match="two consumers"):
        consumers.validate()


def test_the_decorator_registers_in_the_consumer_registry(consumers):
    @consumer("imports", retry="1s 2s", idempotent=True, prefetch=4)
    def handle(data): ...

    spec = consumers.get("imports")
    assert spec is handle.kew_consumer and spec.idempotent and spec.prefetch == 4
    assert [i.total_seconds() for i in spec.schedule.intervals] == [1.0, 2.0]
    assert handle(None) is None  # the function is returned unchanged
    with pytest.raises(KeyError, match="imports"):
        consumers.get("nope")


def test_a_consumer_that_names_no_schedule_retries_with_back_off_then_gives_up(consumers, settings):
    @consumer("defaults")
    def handle(data): ...

    @consumer("none", retry=None)
    def once(data): ...

    intervals = [i.total_seconds() for i in consumers.get("defaults").schedule.intervals]
    assert intervals == [10.0, 60.0, 600.0]  # finite, each wait longer: never a hot loop
    assert consumers.get("none").schedule.intervals == ()
    settings.KEW = {"CONSUMERS": {"RETRY": "1s 5s"}}

    @consumer("configured")
    def configured(data): ...

    assert [i.total_seconds() for i in consumers.get("configured").schedule.intervals] == [1, 5]


def test_registering_the_same_handler_again_is_harmless():
    registry = ConsumerRegistry()

    def handler(data): ...

    registry.register(ConsumerSpec("q", handler))
    registry.register(ConsumerSpec("q", handler))
    assert len(registry) == 1 and not registry.duplicates
    registry.clear()
    assert "q" not in registry


def test_bad_provider_settings_raise_a_named_error(settings, providers):
    with pytest.raises(ProviderNotConfigured, match="KEW\\['PROVIDERS'\\]\\['default'\\]"):
        build_provider("default", {"URL": "nope://"})
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    with pytest.raises(ProviderNotConfigured, match="no provider 'broker'"):
        get_provider("broker")
    assert issubclass(ProviderNotConfigured, KewImproperlyConfigured)


def test_importing_kew_django_loads_no_models():
    code = (
        "import sys, kew_django; assert 'kew_django.models' not in sys.modules; "
        "assert 'django.db.models' not in sys.modules; print(sorted(kew_django.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Channel" in out.stdout and "PermanentError" in out.stdout


def test_a_batch_size_over_postgresql_s_subtransaction_cache_is_a_warning(settings, db):
    # db: the PostgreSQL pass runs it too, where the warning applies
    settings.KEW = {"CONSUMERS": {"BATCH_SIZE": 100}}
    on_postgres = any(c.vendor == "postgresql" for c in connections.all())
    messages = check_settings()
    assert ids(messages) == (["kew.W002"] if on_postgres else [])
    if on_postgres:
        assert "more than 64 subtransactions" in messages[0].msg
    settings.KEW = {"CONSUMERS": {"BATCH_SIZE": 64}}
    assert ids(check_settings()) == []
