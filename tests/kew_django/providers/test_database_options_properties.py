"""Property-based: any database:// URL and options give a provider or a ConfigurationError."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kew.errors import ConfigurationError
from kew_django.providers.database import DatabaseProvider

NAMES = st.sampled_from(["lease", "poll_interval", "leese", "using", ""])
VALUES = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e3", "30", "0.05", "1e400"]),
)


def check(url: str, options: dict[str, object]) -> None:
    try:
        provider = DatabaseProvider.from_url(url, **options)
    except ConfigurationError:
        return
    lease = provider.lease.total_seconds()
    assert math.isfinite(lease) and lease > 0
    assert math.isfinite(provider.poll_interval) and provider.poll_interval > 0


@settings(max_examples=300, deadline=None)
@given(
    netloc=st.one_of(
        st.sampled_from(["", "default", "nope", "u:p@h", "[::1"]), st.text(max_size=8)
    ),
    path=st.sampled_from(["", "/", "/x"]),
    query=st.lists(st.tuples(NAMES, VALUES), max_size=3),
)
def test_any_database_url_gives_a_provider_or_a_configuration_error(netloc, path, query):
    text = "&".join(f"{name}={value}" for name, value in query)
    check(f"database://{netloc}{path}?{text}", {})


@settings(max_examples=200, deadline=None)
@given(
    options=st.dictionaries(
        NAMES,
        st.one_of(VALUES, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()),
        max_size=3,
    )
)
def test_any_database_options_give_a_provider_or_a_configuration_error(options):
    check("database://", options)
