"""PostgreSQL at production durability for the benchmarks: the harness runs it without fsync."""

from __future__ import annotations

import time


def durable(url: str, dbname: str) -> None:
    """Turn fsync, full_page_writes and synchronous_commit on: production durability."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ALTER SYSTEM SET fsync = on")
        connection.execute("ALTER SYSTEM SET full_page_writes = on")
        connection.execute("SELECT pg_reload_conf()")
        connection.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = on')
    deadline = time.monotonic() + 10
    while True:  # the reload reaches each session at its own pace: ask new ones
        with psycopg.connect(url, autocommit=True) as connection:
            shown = [connection.execute(f"SHOW {name}").fetchone() for name in DURABILITY]
        values = [row[0] if row else "?" for row in shown]
        if values == ["on"] * len(DURABILITY) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print("PostgreSQL: " + ", ".join(f"{n} {v}" for n, v in zip(DURABILITY, values, strict=True)))
    if values != ["on"] * len(DURABILITY):
        raise SystemExit("PostgreSQL did not take production durability settings")


DURABILITY = ("fsync", "full_page_writes", "synchronous_commit")
