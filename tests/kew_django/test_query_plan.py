"""Hot statements use their indexes (EXPLAIN): the relay's claim, the database provider's lease."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction

from kew_django.providers.database import DatabaseProvider
from kew_django.providers.leases import Leases
from kew_django.relay.claims import claim_sql
from kew_django.relay.publisher import Relay

FILL = """
INSERT INTO kew_django_outboxmessage
    (id, queue, payload, content_type, headers, status, attempts, last_error,
     created_at, sent_at, requeue_of)
SELECT gen_random_uuid(), 'q' || (n %% 10), '\\x7b7d', 'application/json', '{}',
       CASE WHEN n <= %s THEN 'sent' ELSE 'pending' END, 0, '',
       now() - interval '1 day' + n * interval '1 millisecond',
       CASE WHEN n <= %s THEN now() END, ''
FROM generate_series(1, %s) AS n
"""


def explain(sql: str, params: list) -> str:
    """Return PostgreSQL's plan for ``sql`` (printed, for the test's output); run nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    print(plan)
    return plan


@pytest.mark.postgresql_only
def test_claim_uses_the_partial_pending_index_and_the_primary_key(transactional_db):
    assert connection.vendor == "postgresql"
    sent, total = 200_000, 201_000
    with connection.cursor() as cursor:
        cursor.execute(FILL, [sent, sent, total])
        cursor.execute("ANALYZE kew_django_outboxmessage")
    relay = Relay(DatabaseProvider(), batch_size=100)
    with transaction.atomic():  # the claim's SELECT ... FOR UPDATE compiles only in one
        plan = explain(*claim_sql(relay.claimable(), 100, "default"))
    assert "Index Scan using kew_outbox_pending_idx" in plan, plan
    assert "kew_django_outboxmessage_pkey" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan


QUEUE_FILL = """
INSERT INTO kew_django_queuedmessage
    (queue, payload, message_id, properties, available_at, redelivered, created_at)
SELECT 'q' || (n %% 10), '\\x7b7d', NULL, '{}',
       now() + CASE WHEN n %% 2 = 0 THEN interval '1 hour' ELSE interval '0' END
             - n * interval '1 millisecond',
       false, now()
FROM generate_series(1, %s) AS n
"""


@pytest.mark.postgresql_only
def test_the_database_providers_lease_uses_the_queue_index_and_the_primary_key(
    transactional_db,
):
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(QUEUE_FILL, [200_000])  # half of it scheduled an hour ahead
        cursor.execute("ANALYZE kew_django_queuedmessage")
    plan = explain(Leases("default")._lease_sql, ["q3", 100, 30.0, 30.0, uuid.uuid4()])
    assert "kew_queued_next_idx" in plan, plan
    assert "kew_django_queuedmessage_pkey" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
