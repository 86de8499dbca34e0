"""Drop the NOTIFY triggers: Kew wakes listeners after the sender's commit instead.

A NOTIFY inside a transaction makes PostgreSQL take a cluster-wide lock at
its commit; ``kew_django.db.wake`` sends the NOTIFY from a connection of its
own once the sender's transaction has committed. Reversing this migration
puts the triggers of ``0002_notify_triggers`` back. A no-op off PostgreSQL.
"""

import importlib

from django.db import migrations

triggers = importlib.import_module("kew_django.migrations.0002_notify_triggers")


class Migration(migrations.Migration):
    dependencies = [("kew_django", "0009_topics")]

    operations = [migrations.RunPython(triggers.drop, triggers.create, elidable=False)]
