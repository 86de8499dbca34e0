import subprocess
import sys

import pytest

from kew import ConfigurationError, connect
from kew.providers import redact


def test_unknown_scheme_suggests_the_nearest():
    with pytest.raises(ConfigurationError, match="did you mean 'artemis'"):
        connect("artemsi://localhost:61613")


def test_url_without_scheme_is_explained():
    with pytest.raises(ConfigurationError, match="has no scheme"):
        connect("localhost:61613")


def test_redact_hides_passwords_only():
    assert redact("artemis://kew:s3cret@broker:61613/") == "artemis://kew:***@broker:61613/"
    assert redact("memory://") == "memory://"


def test_importing_kew_does_not_import_django():
    code = (
        "import sys, kew, kew.qchan, kew.providers.memory, kew.codecs, kew.schedule\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
