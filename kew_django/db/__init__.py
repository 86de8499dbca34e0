"""Database plumbing shared by the relay, the workers and the database provider.

- ``notify``: PostgreSQL LISTEN/NOTIFY wake-ups;
- ``connections``: closing a worker thread's connections;
- ``errors``: ``DATABASE_ERRORS``, the errors of a lost connection.
"""
