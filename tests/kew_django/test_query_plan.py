"""The relay's claim uses the partial index on pending rows and the primary key (EXPLAIN)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from kew_django.providers.database import DatabaseProvider
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


@pytest.mark.postgresql_only
def test_claim_uses_the_partial_pending_index_and_the_primary_key(transactional_db):
    assert connection.vendor == "postgresql"
    sent, total = 200_000, 201_000
    with connection.cursor() as cursor:
        cursor.execute(FILL, [sent, sent, total])
        cursor.execute("ANALYZE kew_django_outboxmessage")
    relay = Relay(DatabaseProvider(), batch_size=100)
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = claim_sql(relay.claimable(), 100, "default")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    print(plan)
    assert "Index Scan using kew_outbox_pending_idx" in plan, plan
    assert "kew_django_outboxmessage_pkey" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
