"""A savepoint that a success leaves in place for the commit to release.

``transaction.atomic()`` inside a transaction costs two statements, each a
round trip: ``SAVEPOINT`` before the block and ``RELEASE SAVEPOINT`` after
it. A group commit runs dozens of handlers in one transaction and never
goes back to an earlier savepoint once a later one has begun, so the
release buys nothing there: the commit releases every savepoint still open
at once. :func:`kept_savepoint` is ``atomic()`` without that release. A
block that raises is rolled back to its savepoint, with the
``on_commit`` callbacks it registered, as ``atomic()`` does.

Savepoints left open nest: the transaction stays as deep as the number of
blocks that ran, which PostgreSQL bears well to a few hundred (the batch
is bounded far below that; check kew.W002).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import Error, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper


@contextmanager
def kept_savepoint(using: str) -> Iterator[None]:
    """Run the block in a savepoint of the open transaction; keep it open when the block succeeds.

    Like ``transaction.atomic(using)`` nested in a transaction: the block
    raising, or leaving the transaction marked for rollback, rolls its
    writes and its ``on_commit`` callbacks back; if that rollback fails the
    whole transaction is marked for rollback. Must run inside ``atomic()``.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("kept_savepoint() runs inside a transaction.atomic() block")
    sid = connection.savepoint()
    if sid is None:  # a backend without savepoints: a failure dooms the transaction, as in atomic()
        with transaction.atomic(using, savepoint=False):
            yield
        return
    connection.savepoint_ids.append(sid)
    try:
        yield
    except BaseException:
        connection.savepoint_ids.pop()
        _roll_back_to(connection, sid)
        raise
    connection.savepoint_ids.pop()
    if connection.needs_rollback:  # an inner atomic(savepoint=False) failed and was caught
        _roll_back_to(connection, sid)


def _roll_back_to(connection: BaseDatabaseWrapper, sid: str) -> None:
    connection.needs_rollback = False
    if connection.closed_in_transaction:
        connection.needs_rollback = True
        return
    try:
        connection.savepoint_rollback(sid)
    except Error:
        connection.needs_rollback = True  # the transaction itself is lost: the caller's to end
