"""System checks for the imports app's settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from kew.errors import ConfigurationError
from kew.schedule import Schedule
from project.imports.admission import SETTINGS as ADMISSION_SETTINGS
from project.imports.importer import ImporterNotFound, get_importer, import_roots


@register()
def check_import_settings(app_configs, **kwargs) -> list:
    """Check the importer, the import roots and the retry schedules."""
    problems = []
    try:
        get_importer()
    except ImporterNotFound as error:
        problems.append(Error(str(error), id="imports.E001"))
    roots = import_roots()
    if not roots:
        problems.append(Error("IMPORT_ROOTS is empty: no path can be imported", id="imports.E002"))
    for root in roots:
        if not root.is_dir():
            problems.append(
                Warning(
                    f"import root {root} is not a directory",
                    hint="run 'manage.py create_import_root' or fix IMPORT_ROOTS",
                    id="imports.W001",
                )
            )
    for name in ("IMPORT_RETRY", "NOTIFY_RETRY"):
        try:
            Schedule.parse(getattr(settings, name))
        except ConfigurationError as error:
            problems.append(Error(f"{name}: {error}", id="imports.E003"))
    problems.extend(check_admission_settings())
    return problems


def check_admission_settings() -> list:
    """Check that the admission bounds, Retry-After and the import concurrency are at least 1."""
    problems = []
    for name in (*ADMISSION_SETTINGS, "IMPORT_CONCURRENCY"):
        value = getattr(settings, name, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            text = f"{name} must be a whole number of at least 1, not {value!r}"
            problems.append(Error(text, id="imports.E004"))
    return problems
