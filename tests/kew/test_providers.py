import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("password", ["p@ss", "pa/ss", "pa#ss", "pa?ss", "a@b/c#d"])
def test_redact_hides_passwords_with_reserved_characters(password):
    shown = redact(f"artemis://kew:{password}@broker:61613")
    assert shown == "artemis://kew:***@broker:61613"


@given(password=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30))
def test_redact_never_shows_a_password(password):
    shown = redact(f"artemis://kew:{password}@broker:61613")
    assert shown == "artemis://kew:***@broker:61613"


def test_a_malformed_url_is_refused_without_its_password():
    with pytest.raises(ConfigurationError) as refused:
        connect("artemis://kew:se/cr#et@broker:notaport")
    assert "se/cr#et" not in str(refused.value) and "cr#et" not in str(refused.value)


def test_importing_kew_does_not_import_django():
    code = (
        "import sys, kew, kew.qchan, kew.providers.memory, kew.codecs, kew.schedule\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
