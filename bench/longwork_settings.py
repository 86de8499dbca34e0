"""Settings of bench/longwork.py's old-mode processes: the project's, imports in one transaction."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.longwork_app"]  # noqa: F405 - after project.imports
