"""The PostgreSQL server from tests.harness is real; the skip/fail helper behaves."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.harness.postgres import PostgresServer
from tests.harness.services import service_missing


@pytest.mark.postgres
def test_connect_and_version(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        (version,) = conn.execute("select version()").fetchone()
    assert version.startswith("PostgreSQL ")


@pytest.mark.postgres
def test_table_round_trip(postgres_url: str) -> None:
    table = f"smoke_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        conn.execute(f"create table {table} (id serial primary key, body text not null)")
        conn.execute(f"insert into {table} (body) values (%s), (%s)", ("one", "two"))
        conn.commit()
    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        rows = conn.execute(f"select body from {table} order by id").fetchall()
        conn.execute(f"drop table {table}")
    assert rows == [("one",), ("two",)]


@pytest.mark.postgres
def test_superuser_can_create_databases(postgres_server: PostgresServer) -> None:
    # pytest-django creates test_<name> databases with this role
    name = f"kew_smoke_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    with postgres_server.connect(name) as conn:
        assert conn.execute("select current_database()").fetchone() == (name,)
    with postgres_server.connect("postgres", autocommit=True) as conn:
        conn.execute(f"drop database {name}")
    entry = postgres_server.django_database()
    assert entry["ENGINE"] == "django.db.backends.postgresql"
    assert entry["PORT"] == str(postgres_server.port)
    assert entry["USER"] == postgres_server.superuser


# --- the CI-aware helper used when a service is missing ---------------------


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1"])
def test_service_missing_fails_on_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="apt-get install thing"):
        service_missing("Thing", "`apt-get install thing`")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_service_missing_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="Thing not available: `apt-get install thing`"):
        service_missing("Thing", "`apt-get install thing`")
