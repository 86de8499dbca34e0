"""Settings for the Kew project, read from the environment (django-environ).

Every setting has a development default, so ``make run`` works on a fresh
machine: SQLite, the database provider as the queue, e-mail to files.
``DEBUG`` is off unless DJANGO_DEBUG=true (``bin/run-dev`` sets it).
Without DJANGO_SECRET_KEY a random key is made once and kept in
``var/secret-key``. Production sets DJANGO_SECRET_KEY, DATABASE_URL,
KEW_BROKER_URL and EMAIL_URL. Credentials inside URLs are masked on error
pages and in logs (``project.redaction``).
"""

import os
import secrets
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; a missing file is fine


def local_secret_key(path: Path) -> str:
    """Return the key kept in ``path``, creating a random one first (atomically, mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(secrets.token_urlsafe(50))
        try:
            os.link(draft, path)  # fails if another process made one meanwhile: keep that
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def whole_number(name: str, default: int) -> int:
    """Return the whole number in environment variable ``name``; a clear error if it is not one."""
    try:
        return env.int(name, default=default)
    except ValueError:
        text = f"{name} must be a whole number, not {env.str(name)!r}"
        raise ImproperlyConfigured(text) from None


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or local_secret_key(VAR_DIR / "secret-key")
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
)
LOG_LEVEL = env.str("KEW_LOG_LEVEL", default="INFO")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "kew_django",
    "project.imports",
]
if django.VERSION < (6, 0):  # Django 5.2: the django-tasks backport of django.tasks
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if env.bool("DJANGO_SERVE_STATIC", default=False):  # a WSGI server without a static one
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default has several writers (web, relay, consumers): write-ahead
    # logging lets readers run beside a writer, IMMEDIATE transactions take the
    # write lock up front (no "database is locked" on a read-to-write upgrade),
    # and writers wait up to 20 s for each other instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# E-mail: EMAIL_URL (e.g. smtp://user:pass@host:587, consolemail://), or by default
# each message written to a file under var/mail. Django 6.1 configures mailers by
# alias (MAILERS) and deprecates the EMAIL_BACKEND family; Django 5.2 has only those.
if "EMAIL_URL" in env:
    _email = env.email("EMAIL_URL")
else:
    _email = {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(VAR_DIR / "mail"),
    }
if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend"):
    # Seconds an SMTP server may take to answer, so a stalled one fails the send
    # (and the notice is retried) instead of holding a worker for ever.
    _email.setdefault("EMAIL_TIMEOUT", env.float("EMAIL_TIMEOUT", default=30.0))
if django.VERSION >= (6, 1):
    _mailer_options = {
        "EMAIL_HOST": "host",
        "EMAIL_PORT": "port",
        "EMAIL_HOST_USER": "username",
        "EMAIL_HOST_PASSWORD": "password",
        "EMAIL_USE_TLS": "use_tls",
        "EMAIL_USE_SSL": "use_ssl",
        "EMAIL_TIMEOUT": "timeout",
        "EMAIL_FILE_PATH": "file_path",
    }
    MAILERS = {
        "default": {
            "BACKEND": _email["EMAIL_BACKEND"],
            "OPTIONS": {
                option: _email[name] for name, option in _mailer_options.items() if _email.get(name)
            },
        }
    }
else:
    globals().update(_email)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="kew@localhost")

# The reference application (project.imports): where imports may come from, how
# often to retry them and their outcome e-mails, and which importer does the work.
IMPORT_ROOTS = env.list("IMPORT_ROOTS", default=[str(VAR_DIR / "import-root")])
IMPORT_IMPORTER = env.str("IMPORT_IMPORTER", default="project.imports.importer.FilesystemImporter")
# Each user imports from their own folder of each root, <root>/<username>/ (false: any
# user may import anything under the roots).
IMPORT_USER_FOLDERS = env.bool("IMPORT_USER_FOLDERS", default=True)
IMPORT_MAX_FILES = env.int("IMPORT_MAX_FILES", default=100_000)  # files one import may find
IMPORT_RETRY = env.str("IMPORT_RETRY", default="10s 10s 2m")
NOTIFY_RETRY = env.str("NOTIFY_RETRY", default="10s 1m 5m 30m 2h")
IMPORT_SITE_URL = env.str("IMPORT_SITE_URL", default="http://127.0.0.1:8000")
# Admission control (docs/backpressure.md): a new import is refused with 503 once this
# many imports wait (outbox + broker queue), with 429 once its user has this many
# pending; both answers say Retry-After (seconds).
IMPORT_MAX_BACKLOG = whole_number("IMPORT_MAX_BACKLOG", 10_000)
IMPORT_MAX_PENDING_PER_USER = whole_number("IMPORT_MAX_PENDING_PER_USER", 100)
IMPORT_RETRY_AFTER = whole_number("IMPORT_RETRY_AFTER", 30)
# At most this many imports run at once across every worker process and host (a
# cluster-wide limit that protects the server imports write into, however many
# workers run); an import over it waits, spending no attempt. An admin row (Kew
# messaging -> Limit settings) changes it without a restart.
IMPORT_CONCURRENCY = whole_number("IMPORT_CONCURRENCY", 8)

# Kew (kew_django): which provider carries the messages, and how the relay and the
# consumer workers run. "database://" keeps the queues in DATABASES["default"] (no
# broker needed; a send writes its queue row, with no relay hop, unless
# ?direct=false); production points KEW_BROKER_URL at Artemis, e.g.
# artemis://user:password@broker:61613. See docs/django.md.
KEW = {
    "PROVIDERS": {"default": {"URL": env.str("KEW_BROKER_URL", default="database://")}},
    "RELAY": {
        "BATCH_SIZE": env.int("KEW_RELAY_BATCH_SIZE", default=500),
        "MAX_ATTEMPTS": env.int("KEW_RELAY_MAX_ATTEMPTS", default=5),
        "RETENTION": env.str("KEW_RELAY_RETENTION", default="7d"),
    },
    "CONSUMERS": {
        "CONCURRENCY": env.int("KEW_CONSUMER_CONCURRENCY", default=1),
        # after SIGTERM; a few seconds less than the orchestrator's kill timeout
        "SHUTDOWN_GRACE": env.float("KEW_SHUTDOWN_GRACE", default=25.0),
    },
    "OBSERVABILITY": {
        # /metrics /healthz /readyz of the Kew commands (unset: off); docs/operations.md
        "PORT": env.int("KEW_METRICS_PORT", default=None),
        "ADDRESS": env.str("KEW_METRICS_ADDRESS", default="127.0.0.1"),
        "TOKEN": env.str("KEW_METRICS_TOKEN", default=""),  # for /kew/metrics without a login
    },
}

# Error pages (DEBUG) and error e-mails: Django's filter, plus passwords in URLs masked.
DEFAULT_EXCEPTION_REPORTER_FILTER = "project.debug.RedactingExceptionReporterFilter"

# Django tasks (django.tasks; the django-tasks backport on Django 5.2) run through
# Kew: enqueued in the caller's transaction for KEW's default provider (through the
# relay to a broker) and run by manage.py kew_consume / kew_run with retries and
# dead letters. See docs/tasks.md.
TASKS = {
    "default": {
        "BACKEND": "kew_django.tasks.KewTaskBackend",
        "QUEUES": ["default", "import-maintenance"],
        "OPTIONS": {"RETRY": env.str("KEW_TASK_RETRY", default="10s 1m 10m")},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "project.redaction.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    },
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "loggers": {
        # Django's own errors (a 500's traceback) through the same redacting formatter.
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO"},
        "kew": {"handlers": ["console"], "level": LOG_LEVEL},
        "kew_django": {"handlers": ["console"], "level": LOG_LEVEL},
        "project": {"handlers": ["console"], "level": LOG_LEVEL},
    },
}
