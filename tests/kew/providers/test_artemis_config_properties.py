"""Property-based: any URL and options give an ArtemisConfig or a ConfigurationError."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kew.errors import ConfigurationError
from kew.providers import redact
from kew.providers.artemis.config import _OPTIONS, ArtemisConfig, parse_url

NAMES = st.sampled_from([*_OPTIONS, "heartbeats", "timeout", ""])
VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e3", "true", "10", "0.5", "[::1"]),
)
NETLOCS = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda user, host, port: f"{user}@{host}:{port}",
        st.sampled_from(["", "u:p", "u:p%40ss", "u:", ":p", "u:p:q"]),
        st.sampled_from(["h", "[::1]", "[::1", "127.0.0.1", "", "h,h2", "a b"]),
        st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=4)),
    ),
)


def check(url: str, options: dict[str, object]) -> None:
    try:
        config = parse_url(url, **options)
    except ConfigurationError as error:
        if "u:secret@" in url:
            assert "secret" not in str(error)  # the password is never shown
        return
    assert isinstance(config, ArtemisConfig) and config.hosts
    for _host, port in config.hosts:
        assert 0 < port < 65536
    assert config.connect_timeout > 0 and config.receipt_timeout > 0
    for name in ("connect_timeout", "receipt_timeout", "reconnect_delay", "reconnect_delay_max"):
        assert math.isfinite(getattr(config, name))


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["artemis", "artemis+ssl", "artemiss", ""]),
    netloc=NETLOCS,
    path=st.sampled_from(["", "/", "/x", "//"]),
    query=st.lists(st.tuples(NAMES, VALUES), max_size=4),
)
def test_any_url_gives_a_config_or_a_configuration_error(scheme, netloc, path, query):
    text = "&".join(f"{name}={value}" for name, value in query)
    check(f"{scheme}://{netloc}{path}?{text}", {})


@settings(max_examples=300, deadline=None)
@given(
    options=st.dictionaries(
        NAMES,
        st.one_of(VALUES, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()),
        max_size=4,
    )
)
def test_any_keyword_options_give_a_config_or_a_configuration_error(options):
    check("artemis://u:secret@h:61613", options)


@given(url=st.text(max_size=40))
def test_redact_never_raises(url):
    assert isinstance(redact(url), str)
