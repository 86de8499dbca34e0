"""On PostgreSQL, NOTIFY the relay and database-provider consumers when rows arrive.

A NOTIFY issued inside a transaction is delivered when it commits (and
never if it rolls back), so listeners wake exactly when new rows become
visible. Other databases fall back to polling.
"""

from django.db import migrations

OUTBOX_CHANNEL = "kew_outbox"
QUEUE_CHANNEL = "kew_queue"

CREATE = """
CREATE OR REPLACE FUNCTION kew_notify_outbox() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('kew_outbox', '');
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER kew_outbox_notify AFTER INSERT ON kew_django_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION kew_notify_outbox();

CREATE OR REPLACE FUNCTION kew_notify_queue() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('kew_queue', NEW.queue);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER kew_queue_notify
    AFTER INSERT OR UPDATE OF available_at ON kew_django_queuedmessage
    FOR EACH ROW WHEN (NEW.lease_token IS NULL) EXECUTE FUNCTION kew_notify_queue();
"""

DROP = """
DROP TRIGGER IF EXISTS kew_outbox_notify ON kew_django_outboxmessage;
DROP FUNCTION IF EXISTS kew_notify_outbox();
DROP TRIGGER IF EXISTS kew_queue_notify ON kew_django_queuedmessage;
DROP FUNCTION IF EXISTS kew_notify_queue();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("kew_django", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
