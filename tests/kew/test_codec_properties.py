"""Properties of the JSON codec: any bytes decode to a value or raise DecodeError, nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kew import DecodeError, JsonCodec


@dataclass
class Item:
    name: str
    size: int = 0


@dataclass
class Order:
    order_id: int
    items: list[Item] = field(default_factory=list)
    note: str | None = None
    extra: dict = field(default_factory=dict)


TYPES = [None, Order, Item, dict, list]
QUICK = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["order_id", "items", "name", "size", "note", "x"]), children
        )
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
# Fragments that stress the parser: deep nesting, huge integers, broken encodings.
hostile = st.one_of(
    st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 20_000).map(lambda n: b"[" * n),
    st.integers(4000, 6000).map(lambda n: b'{"order_id": ' + b"7" * n + b"}"),
    st.binary(max_size=64).map(lambda b: b'{"name": "' + b + b'"}'),
    st.text().map(lambda t: t.encode("utf-16")),
)


def decodes_or_refuses(codec: JsonCodec, payload: bytes) -> None:
    try:
        codec.decode(payload)
    except DecodeError as error:
        assert error.raw == payload


@QUICK
@given(payload=st.binary(max_size=512), payload_type=st.sampled_from(TYPES))
def test_any_bytes_decode_or_raise_decode_error(payload, payload_type):
    decodes_or_refuses(JsonCodec(payload_type), payload)


@QUICK
@given(payload=hostile, payload_type=st.sampled_from(TYPES))
def test_hostile_payloads_decode_or_raise_decode_error(payload, payload_type):
    decodes_or_refuses(JsonCodec(payload_type), payload)


@QUICK
@given(value=json_values, payload_type=st.sampled_from(TYPES))
def test_any_json_decodes_or_raises_decode_error(value, payload_type):
    decodes_or_refuses(JsonCodec(payload_type), json.dumps(value).encode())


@QUICK
@given(value=json_values)
def test_plain_json_round_trips(value):
    codec = JsonCodec()
    assert codec.decode(codec.encode(value)) == value
