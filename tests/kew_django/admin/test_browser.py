"""The admin in a real browser: headless Chromium (Debian's package) driven by Playwright.

An operator logs in, opens a dead letter, fixes its payload, requeues it,
and the relay and the consumer, running on threads of this process, deliver
it. Screenshots go to a temporary directory, or to ``KEW_SCREENSHOT_DIR``
(``KEW_SCREENSHOT_DIR=docs/img`` refreshes the ones in the docs).
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from kew_django.models import DeadLetter, OutboxMessage
from kew_django.relay.publisher import Relay
from kew_django.runner import Runner
from tests.harness.services import service_missing

from .browser import BrowserThread
from .conftest import QUEUE, Order

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
WAIT = 15.0


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from /usr/bin/chromium (skip without it; fail on CI)."""
    if not CHROMIUM.exists():
        service_missing("Chromium", "`apt-get install chromium` (Debian's package)")
    from playwright.sync_api import sync_playwright

    thread = BrowserThread()
    playwright = thread.remote(thread.run(lambda: sync_playwright().start()))
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()
        thread.shutdown()


@pytest.fixture
def page(browser, live_server, transactional_db):
    """A page logged in to the admin as a superuser."""
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server.url)
    context.set_default_timeout(WAIT * 1000)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    yield page
    context.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: KEW_SCREENSHOT_DIR, or the test's temporary directory."""
    folder = Path(os.environ.get("KEW_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def kew_threads(handled, providers, registry):
    """Run the relay and the consumers of the registry on threads until the test ends."""
    relay = Relay(providers["default"], poll_interval=0.1, progress_interval=0)
    runner = Runner(list(registry), relay=relay, poll_interval=0.1, progress_interval=0)
    runner.start()
    yield runner
    runner.join(timeout=WAIT)


def wait_until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_fix_a_dead_letter_and_see_it_consumed(page, kew_threads, handled, dead_letter):
    letter = dead_letter(
        payload=b'{"order_id": 42, "customer": "Ada", "size": "XL"}',
        reason=DeadLetter.Reason.UNDECODABLE,
        error="DecodeError: payload does not fit Order: unknown field(s) size",
        traceback="",
        attempts=1,
    )

    page.goto("/admin/kew_django/deadletter/")
    page.click(f'#result_list a[href$="/deadletter/{letter.pk}/change/"]')
    page.wait_for_selector("pre.kew-json")
    assert "unknown field(s) size" in page.inner_text("#content-main")

    page.click("#kew-edit-requeue")
    textarea = page.locator("textarea[name=payload]")
    assert json.loads(textarea.input_value()) == {"order_id": 42, "customer": "Ada", "size": "XL"}

    textarea.fill('{"order_id": "forty-two", "customer": "Ada"}')  # the wrong type
    page.click("input[name=_requeue]")
    assert "expected int, got str" in page.inner_text(".errorlist")
    assert OutboxMessage.objects.count() == 0

    textarea = page.locator("textarea[name=payload]")
    textarea.fill(json.dumps({"order_id": 42, "customer": "Ada", "note": "size XL"}, indent=2))
    page.click("input[name=_requeue]")
    assert "Requeued with the edited payload" in page.inner_text(".messagelist")

    wait_until(lambda: handled, "the consumer to handle the requeued order")
    assert handled == [Order(order_id=42, customer="Ada", note="size XL")]
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.REQUEUED
    wait_until(
        lambda: OutboxMessage.objects.get(pk=letter.requeued_as).status == "sent",
        "the relay to mark the row sent",
    )
    page.reload()
    assert "Requeued" in page.inner_text("#content-main")
    assert page.locator("#kew-edit-requeue").count() == 0


def test_bulk_requeue_in_the_browser(page, kew_threads, handled, dead_letter):
    dead_letter(payload=b'{"order_id": 1, "customer": "Ada"}')
    dead_letter(payload=b'{"order_id": 2, "customer": "Grace"}')
    dead_letter(payload=b'{"order_id": 3, "customer": "Hedy"}', state=DeadLetter.State.DISCARDED)

    page.goto("/admin/kew_django/deadletter/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "requeue")
    page.click("button[name=index]")
    assert page.inner_text("#kew-confirm-count") == "2"
    assert "1 selected dead letter is" in page.inner_text("#kew-confirm-skipped")
    page.click("input[type=submit][value^='Yes']")
    assert "Requeue: 2 dead letters. Skipped 1" in page.inner_text(".messagelist")

    wait_until(lambda: len(handled) == 2, "both orders to be handled")
    assert sorted(order.order_id for order in handled) == [1, 2]


def test_screenshots_of_the_operator_screens(page, shots, registry, handled, dead_letter):
    seed_a_busy_day(dead_letter)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto("/admin/kew_django/deadletter/?state__exact=dead")
    page.click("#toggle-nav-sidebar")  # more room for the table; the admin remembers it
    page.screenshot(path=shots / "admin-dead-letters.png", full_page=True)

    letter = DeadLetter.objects.filter(queue=QUEUE).order_by("-last_failed_at").first()
    page.goto(f"/admin/kew_django/deadletter/{letter.pk}/change/")
    page.wait_for_selector("pre.kew-json")
    page.screenshot(path=shots / "admin-dead-letter.png", full_page=True)

    page.click("#kew-edit-requeue")
    page.fill("textarea[name=payload]", '{\n  "order_id": 12,\n  "customer_name": "Ada"\n}')
    page.click("input[name=_requeue]")
    assert "unknown field(s) customer_name" in page.inner_text(".errorlist")
    page.screenshot(path=shots / "admin-edit-and-requeue.png", full_page=True)

    page.goto("/admin/kew_django/outboxmessage/dashboard/")
    assert page.locator("#kew-chart rect.kew-sent").count() == 24
    assert page.inner_text("#kew-lag-value") != "none"
    page.screenshot(path=shots / "admin-dashboard.png", full_page=True)


def seed_a_busy_day(dead_letter) -> None:
    """Write a plausible day of traffic on three queues, with a few failures."""
    now = timezone.now()
    rows = []
    for hour in range(24):
        for n in range(5 + (hour * 7) % 11):
            sent = now - timedelta(hours=hour, minutes=n)
            rows.append(
                OutboxMessage(
                    queue=(QUEUE, "mail.outcomes", "imports")[n % 3],
                    payload=b"{}",
                    status="sent",
                    created_at=sent,
                    sent_at=sent,
                )
            )
    for n in range(4):
        rows.append(
            OutboxMessage(
                queue="mail.outcomes", payload=b"{}", created_at=now - timedelta(seconds=20 + n * 7)
            )
        )
    rows.append(
        OutboxMessage(
            queue="imports",
            payload=b"{}",
            status="failed",
            attempts=5,
            last_error="SendError: AMQ229024 message too large",
            created_at=now - timedelta(hours=2),
        )
    )
    OutboxMessage.objects.bulk_create(rows)
    errors = [
        ("ConnectionRefusedError: [Errno 111] SMTP server refused", "mail.outcomes", "exhausted"),
        (
            "DecodeError: payload does not fit Order: missing field(s) customer",
            QUEUE,
            "undecodable",
        ),
        ("PermanentError: import root /data/lab-3 is not readable", "imports", "failed"),
    ]
    for n in range(7):
        error, queue, reason = errors[n % 3]
        ago = timedelta(hours=(n * 5) % 23, minutes=n * 13)
        dead_letter(
            queue=queue,
            message_id=f"9b1f0c1e-5d2a-4e7b-9c61-{n + 11:012d}",
            reason=reason,
            error=error,
            attempts=1 if reason != "exhausted" else 5,
            first_failed_at=now - ago - timedelta(minutes=40),
            last_failed_at=now - ago,
            payload=json.dumps(
                {
                    "order_id": n + 11,
                    "customer": "Ada Lovelace",
                    "note": "<script>alert('not run')</script>",
                }
            ).encode(),
            headers={"tenant": "lab-3"},
            traceback=f'Traceback (most recent call last):\n  File "consumers.py", line 31, '
            f"in take_order\n    raise\n{error}",
        )
