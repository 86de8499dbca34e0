"""Secrets stay secret: DEBUG off by default, no password from a URL on error pages or in logs."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from project.redaction import RedactingFormatter, redact_url_credentials
from tests.harness.e2e import BASE, app_env

BROKER = "artemis://kew:s3cret-broker@broker:61613"
MAIL = "smtp://mailer:s3cret-mail@mail:587"  # here, not beside the raise: the page shows source
PASSWORDS = ("s3cret-broker", "s3cret-mail")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BROKER, "artemis://kew:********@broker:61613"),
        (
            "smtp://u:p%40ss@mail:587 and postgres://a:b@db/x",
            "smtp://u:********@mail:587 and postgres://a:********@db/x",
        ),
        ("https://TOKEN123@github.com/x", "https://********@github.com/x"),
        ("database://", "database://"),
        ("mailto:ada@example.org", "mailto:ada@example.org"),
        ("http://example.org/a@b", "http://example.org/a@b"),
        ("artemis://kew:p@ss@broker:61613", "artemis://kew:********@broker:61613"),
        ("artemis://kew:pa/ss#x@broker", "artemis://kew:********@broker"),
        (
            "{'URL': 'amqp://u:p@ss@h', 'MAIL': 'a@b'}",
            "{'URL': 'amqp://u:********@h', 'MAIL': 'a@b'}",
        ),
    ],
)
def test_credentials_in_urls_are_masked(text, expected):
    assert redact_url_credentials(text) == expected


def test_debug_is_off_unless_asked_for():
    env = {k: v for k, v in app_env(DJANGO_SETTINGS_MODULE="project.settings").items()}
    env.pop("DJANGO_DEBUG", None)
    code = "from django.conf import settings; print(settings.DEBUG, bool(settings.SECRET_KEY))"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "True"]


def test_the_debug_page_hides_passwords_in_urls(settings):
    settings.DEBUG = True
    settings.KEW = {"PROVIDERS": {"default": {"URL": BROKER}}}
    settings.EMAIL_URL_SEEN = [MAIL]
    request = RequestFactory().get("/boom", HTTP_X_ECHO=BROKER)
    try:
        broker_url = BROKER  # a local variable in the failing frame
        raise RuntimeError("boom")
    except RuntimeError:
        html = ExceptionReporter(request, *sys.exc_info()).get_traceback_html()
    assert broker_url
    assert not [password for password in PASSWORDS if password in html]
    assert "artemis://kew:********@broker:61613" in html


def test_log_lines_and_tracebacks_hide_passwords_in_urls():
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ConnectionError(f"cannot reach {BROKER}")
    except ConnectionError:
        record = logging.LogRecord(
            "kew", logging.ERROR, __file__, 1, "using %s", (BROKER,), sys.exc_info()
        )
    text = formatter.format(record)
    assert "s3cret" not in text
    assert text.count("kew:********@broker") == 2


def test_the_projects_log_handlers_use_the_redacting_formatter():
    from django.conf import settings

    assert settings.LOGGING["formatters"]["plain"]["()"] == "project.redaction.RedactingFormatter"
    assert (
        settings.DEFAULT_EXCEPTION_REPORTER_FILTER
        == "project.debug.RedactingExceptionReporterFilter"
    )


def test_compose_keeps_debug_off():
    compose = (BASE / "docker-compose.yml").read_text()
    assert 'DJANGO_DEBUG: "true"' not in compose


def test_compose_publishes_only_on_loopback_and_takes_secrets_from_the_environment():
    compose = (BASE / "docker-compose.yml").read_text()
    published = re.findall(r'^\s+- "([\d.:]+)"', compose, flags=re.M)
    assert published and all(port.startswith("127.0.0.1:") for port in published), published
    secrets = re.findall(r"^\s+(\w*(?:PASSWORD|SECRET_KEY)): (.*)$", compose, flags=re.M)
    assert {name for name, _ in secrets} >= {"POSTGRES_PASSWORD", "ARTEMIS_PASSWORD"}
    for name, value in secrets:
        assert value.strip('"').startswith("${") and ":?" in value, (name, value)
    urls = re.findall(r'"\w+://(.*)@[\w.-]+:\d+(?:/\w*)?"', compose)
    assert len(urls) == 2, urls  # the database's and the broker's
    for userinfo in urls:
        _, _, password = userinfo.partition(":")
        assert password.startswith("${") and password.endswith("}"), userinfo
    assert "runserver" not in compose and "gunicorn" in compose
