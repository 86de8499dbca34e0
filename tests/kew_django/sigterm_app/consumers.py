"""A slow consumer for the SIGTERM tests, run by manage.py in a subprocess."""

import os
import time
from pathlib import Path

from kew_django import consumer

QUEUE = "test.sigterm"


@consumer(QUEUE, idempotent=True)
def slow(data: dict) -> None:
    """Leave a mark, then take a while."""
    Path(os.environ["KEW_TEST_MARKS"], f"{data['n']}.started").touch()
    time.sleep(float(os.environ.get("KEW_TEST_HANDLER_SECONDS", "1")))
