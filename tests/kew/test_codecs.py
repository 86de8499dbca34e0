from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from kew import BytesCodec, DecodeError, JsonCodec


@dataclass
class FileInfo:
    name: str
    size: int


@dataclass
class ImportJob:
    path: str
    email: str
    files: list[FileInfo] = field(default_factory=list)
    note: str | None = None
    ratio: float = 1.0


def test_dataclass_round_trip_with_nesting_and_optionals():
    codec = JsonCodec(ImportJob)
    job = ImportJob("/data/a", "a@example.org", [FileInfo("x.tif", 3)], ratio=2)
    assert codec.decode(codec.encode(job)) == job


def test_encoding_is_utf8_json():
    assert JsonCodec().encode({"name": "Zürich"}) == '{"name":"Zürich"}'.encode()


def test_plain_data_round_trip():
    codec = JsonCodec()
    assert codec.decode(codec.encode({"a": [1, 2.5, None, True]})) == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf8", "not UTF-8 JSON"),
        (b"{broken", "not UTF-8 JSON"),
        (b'{"path": "/a"}', "missing field"),
        (b'{"path": "/a", "email": "e", "colour": "red"}', "unknown field"),
        (b'{"path": 3, "email": "e"}', "expected str"),
        (b'{"path": "/a", "email": "e", "files": [{"name": "x"}]}', "missing field"),
        (b"[1, 2]", "expected an object"),
    ],
)
def test_decode_errors_explain_and_keep_the_raw_bytes(raw, reason):
    with pytest.raises(DecodeError, match=reason) as caught:
        JsonCodec(ImportJob).decode(raw)
    assert caught.value.raw == raw


def test_bytes_codec_passes_bytes_and_refuses_other_data():
    assert BytesCodec().decode(BytesCodec().encode(b"\x00\x01")) == b"\x00\x01"
    with pytest.raises(TypeError, match="sends bytes"):
        BytesCodec().encode("text")


@dataclass
class Tree:
    children: list[Tree] = field(default_factory=list)


DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b'{"n": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (DEEP, "nested too deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (HUGE_INT, "too large"),
        (b"-" + b"1" * 4301, "too large"),
    ],
)
@pytest.mark.parametrize("payload_type", [None, ImportJob, dict])
def test_payloads_that_cannot_be_parsed_at_all_are_decode_errors(raw, reason, payload_type):
    with pytest.raises(DecodeError, match=reason) as caught:
        JsonCodec(payload_type).decode(raw)
    assert caught.value.raw == raw


def test_a_payload_nested_deeper_than_its_recursive_type_can_be_built_is_a_decode_error():
    raw = b'{"children": [' * 600 + b"{}" + b"]}" * 600  # parses, but too deep to build
    with pytest.raises(DecodeError, match="nested too deeply"):
        JsonCodec(Tree).decode(raw)


def test_a_memoryview_payload_is_decoded_like_bytes():
    assert JsonCodec().decode(memoryview(b'{"a": 1}')) == {"a": 1}
