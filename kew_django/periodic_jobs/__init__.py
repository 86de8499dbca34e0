"""Periodic work with no scheduler process: ``@periodic(every=...)`` or ``@periodic(cron=...)``.

    from kew_django import periodic

    @periodic(cron="0 3 * * *", timezone="Europe/Paris")
    @task
    def purge_import_logs(): ...

Every ``kew_run`` and ``kew_consume`` process runs a ticker; each tick is
fired once in all (docs/periodic.md).
"""

from kew_django.periodic_jobs.registry import CatchUp, PeriodicSpec, periodic, periodic_jobs

__all__ = ["CatchUp", "PeriodicSpec", "periodic", "periodic_jobs"]
