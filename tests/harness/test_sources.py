"""Where the harness's servers come from, and the lifecycle words they share."""

from __future__ import annotations

import time

import pytest

from tests.harness import ArtemisServer, PostgresServer
from tests.harness.artemis import LocalArtemis, UrlArtemis
from tests.harness.artemis import pick_source as pick_artemis
from tests.harness.postgres import LocalPostgres, UrlPostgres
from tests.harness.postgres import pick_source as pick_postgres
from tests.harness.services import ServiceUnavailable, service_missing, service_unsupported


@pytest.fixture
def no_service_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KEW_TEST_ARTEMIS_URL", "KEW_TEST_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEW_TEST_NO_DOCKER", "1")
    return monkeypatch


def test_a_url_in_the_environment_comes_first(no_service_env: pytest.MonkeyPatch) -> None:
    no_service_env.setenv("KEW_TEST_ARTEMIS_URL", "artemis://u:p@mq.example:61613")
    no_service_env.setenv("KEW_TEST_POSTGRES_URL", "postgresql://u:p@db.example/kew")
    assert pick_artemis() is UrlArtemis
    assert pick_postgres() is UrlPostgres
    broker, database = ArtemisServer(), PostgresServer()
    assert isinstance(broker, UrlArtemis) and isinstance(broker, ArtemisServer)
    assert isinstance(database, UrlPostgres) and isinstance(database, PostgresServer)
    assert not broker.controllable and not database.controllable


def test_without_url_or_docker_the_local_binaries_are_used(
    no_service_env: pytest.MonkeyPatch,
) -> None:
    assert type(ArtemisServer(use_docker=True)) is LocalArtemis
    assert type(PostgresServer()) is LocalPostgres
    assert ArtemisServer().mode == PostgresServer().mode == "local"


@pytest.mark.parametrize(
    ("action", "refused"), [("stop", "stop"), ("kill", "kill"), ("restart", "stop")]
)
def test_a_server_given_by_url_cannot_be_controlled(
    no_service_env: pytest.MonkeyPatch, action: str, refused: str
) -> None:
    no_service_env.setenv("KEW_TEST_ARTEMIS_URL", "artemis://u:p@mq.example:61613")
    no_service_env.setenv("KEW_TEST_POSTGRES_URL", "postgresql://u:p@db.example/kew")
    for server in (ArtemisServer(), PostgresServer()):
        with pytest.raises(pytest.skip.Exception, match=f"cannot {refused} the external"):
            getattr(server, action)()


@pytest.mark.postgres
def test_postgres_stop_keeps_data_kill_crashes_close_removes() -> None:
    server = PostgresServer()
    if not server.controllable:
        service_unsupported("cannot stop the external PostgreSQL given by KEW_TEST_POSTGRES_URL")
    try:
        server.start()
    except ServiceUnavailable as exc:
        service_missing(exc.name, exc.install_hint)
    try:
        with server.connect() as conn:
            conn.execute("create table kept (body text)")
            conn.execute("insert into kept values ('before')")
        url, data_dir = server.url, server.data_dir
        server.stop()
        assert not server.is_running()
        server.start()
        if server.mode == "local":  # a container may get another host port
            assert server.url == url
        # synchronous_commit=off: a commit reaches the WAL within ~3 x 200 ms
        time.sleep(1.0)
        server.kill()
        assert not server.is_running()
        server.start()
        with server.connect() as conn:
            assert conn.execute("select body from kept").fetchall() == [("before",)]
    finally:
        server.close()
    assert not server.is_running()
    if data_dir is not None:
        assert not data_dir.exists()
