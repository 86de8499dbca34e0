"""The environment of a ``manage.py`` child process that works on this test's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.db import connection

from tests.harness.processes import ROOT

DATABASE_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def child_env(settings_module: str, **extra: str) -> dict[str, str]:
    """Return os.environ with ``settings_module``, the test database as ``KEW_TEST_DB``, ``extra``.

    The child's settings read ``KEW_TEST_DB`` (JSON) as ``DATABASES["default"]``,
    so it sees what the test wrote, on SQLite and on PostgreSQL alike.
    """
    database = {key: connection.settings_dict[key] for key in DATABASE_KEYS}
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "KEW_TEST_DB": json.dumps(database),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def start_manage_py(settings_module: str, *args: str, **extra: str) -> subprocess.Popen:
    """Start ``manage.py *args`` with :func:`child_env`; its output (text) is on ``stdout``."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=child_env(settings_module, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
