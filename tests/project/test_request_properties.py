"""POST /imports/ answers any body with a 2xx or a 4xx, never a 5xx; a 4xx stores nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kew_django.models import OutboxMessage, QueuedMessage
from project.imports.models import Import

pytestmark = pytest.mark.django_db
QUICK = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["sample", "single.txt", "../..", "/etc", "sample/../sample", "\x00", "\ud800", "x" * 300, "."]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
options = st.dictionaries(st.sampled_from(["include", "max_files", "other"]) | text, values)
bodies = st.one_of(
    values,
    st.fixed_dictionaries(
        {"path": values}, optional={"options": options | values, "email": values}
    ),
    st.dictionaries(st.sampled_from(["path", "options", "email", "x"]), values),
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(4000, 6000).map(
        lambda n: b'{"path": "sample", "options": {"max_files": ' + b"1" * n + b"}}"
    ),
)


def answer(client: Client, body: bytes) -> None:
    before = (Import.objects.count(), OutboxMessage.objects.count(), QueuedMessage.objects.count())
    response = client.post("/imports/", data=body, content_type="application/json")
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        counts = (Import.objects.count(), OutboxMessage.objects.count())
        assert (*counts, QueuedMessage.objects.count()) == before
        assert response.json()["error"]
    else:
        assert response.status_code == 202


@pytest.fixture
def api(import_root, ada_token) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {ada_token}", raise_request_exception=False)


@QUICK
@given(body=bodies)
def test_any_json_body_is_2xx_or_4xx(api, body):
    answer(api, json.dumps(body).encode())


@QUICK
@given(body=raw_bodies)
def test_any_bytes_are_2xx_or_4xx(api, body):
    answer(api, body)
