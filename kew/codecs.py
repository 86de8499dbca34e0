"""Codecs turn data into payload bytes and back. JSON by default; never pickle."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, Generic, Protocol, TypeVar

from kew.errors import DecodeError

T = TypeVar("T")


class Codec(Protocol[T]):
    """Encode data to bytes and decode it back; decoding failures raise DecodeError."""

    content_type: str

    def encode(self, data: T) -> bytes: ...

    def decode(self, payload: bytes) -> T: ...


class BytesCodec:
    """Pass bytes through unchanged."""

    content_type = "application/octet-stream"

    def encode(self, data: bytes) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"BytesCodec sends bytes, not {type(data).__name__}")
        return bytes(data)

    def decode(self, payload: bytes) -> bytes:
        return payload


class JsonCodec(Generic[T]):
    """Encode plain data and dataclasses as UTF-8 JSON.

    With ``type`` set to a dataclass, decoding builds that dataclass
    (nested dataclasses, lists and optionals included) and a payload with
    missing or unknown fields raises DecodeError carrying the raw bytes.
    """

    content_type = "application/json"

    def __init__(self, type: type[T] | None = None):  # noqa: A002 - mirrors the payload's type
        self.type = type

    def encode(self, data: T) -> bytes:
        return json.dumps(_plain(data), ensure_ascii=False, separators=(",", ":")).encode()

    def decode(self, payload: bytes) -> T:
        """Return the data in ``payload``; raise DecodeError (with the raw bytes) for any fault.

        Nothing else escapes: bytes that are not UTF-8 JSON, nesting deeper
        than the parser or the builder can follow, integers beyond Python's
        digit limit and values that do not fit ``type`` all raise DecodeError.
        """
        raw = bytes(payload) if isinstance(payload, bytearray | memoryview) else payload
        try:
            value = json.loads(raw)
        except RecursionError as error:
            raise DecodeError("payload is nested too deeply to decode", raw=raw) from error
        except (TypeError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError too
            raise DecodeError(f"payload is not UTF-8 JSON: {_reason(error)}", raw=raw) from error
        if self.type is None:
            return value
        try:
            return _build(self.type, value)
        except RecursionError as error:
            reason = f"payload is nested too deeply to build {self.type.__name__}"
            raise DecodeError(reason, raw=raw) from error
        except (TypeError, ValueError) as error:
            reason = f"payload does not fit {self.type.__name__}: {error}"
            raise DecodeError(reason, raw=raw) from error


def _reason(error: Exception) -> str:
    """Return why ``json.loads`` failed, in words an operator can act on."""
    text = str(error)
    if "integer string conversion" in text or "int_max_str_digits" in text:
        return "an integer is too large (more than Python's digit limit)"
    return text


def _plain(data: Any) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {f.name: _plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


def _build(tp: Any, value: Any) -> Any:
    """Build a value of type ``tp`` from decoded JSON, checking its shape."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _build(option, value)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{value!r} fits none of {tp}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        built = [_build(item, v) for v in value]
        return built if origin is list else tuple(built)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value)
    if tp is Any or tp is object:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
    return value


@functools.lru_cache(maxsize=1024)
def _dataclass_shape(tp: Any) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """Return the type hints and the init fields of dataclass ``tp`` (computed once per class)."""
    hints = typing.get_type_hints(tp)
    return hints, {f.name: f for f in dataclasses.fields(tp) if f.init}


def _build_dataclass(tp: Any, value: Any) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object for {tp.__name__}, got {type(value).__name__}")
    hints, fields = _dataclass_shape(tp)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in value
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    return tp(**{name: _build(hints.get(name, Any), v) for name, v in value.items()})
