"""The edit-and-requeue form: a dead letter's payload, edited as JSON and checked."""

from __future__ import annotations

import json

from django import forms

from kew.codecs import JsonCodec
from kew.errors import DecodeError
from kew_django.models import DeadLetter
from kew_django.workers.registry import ConsumerSpec, consumers


def consumer_for(queue: str) -> ConsumerSpec | None:
    """Return the consumer registered for ``queue`` in this process, or None."""
    return consumers.get(queue) if queue in consumers else None


def payload_text(payload: bytes | memoryview) -> str:
    """Return a payload as text to edit: indented JSON if it parses, else the decoded bytes."""
    data = bytes(payload)
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, too deep, an integer past the digit limit
        return data.decode("utf-8", errors="replace")


class NotJson(ValueError):
    """A value Python's json module reads but JSON does not have."""


def _refuse_constant(name: str) -> None:
    raise NotJson(f"{name} is not a JSON value")


class EditPayloadForm(forms.Form):
    """Edit a dead letter's payload; valid only if it is JSON its consumer can decode.

    ``cleaned_data["payload"]`` is the compact UTF-8 JSON that will be sent:
    the very bytes that were checked with the consumer's codec.
    """

    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "spellcheck": "false"}),
        strip=False,
    )

    def __init__(self, *args, letter: DeadLetter, **kwargs):
        kwargs.setdefault("initial", {"payload": payload_text(letter.payload)})
        super().__init__(*args, **kwargs)
        self.letter = letter
        self.consumer = consumer_for(letter.queue)

    @property
    def payload_type(self) -> type | None:
        """Return the type the queue's consumer decodes payloads into, if it declares one."""
        return self.consumer.payload if self.consumer else None

    def clean_payload(self) -> bytes:
        text = self.cleaned_data["payload"]
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                "Not valid JSON: %(error)s (line %(line)s, column %(column)s).",
                code="json",
                params={"error": error.msg, "line": error.lineno, "column": error.colno},
            ) from error
        except RecursionError as error:
            raise forms.ValidationError(
                "Not valid JSON: it is nested too deeply to read.", code="json"
            ) from error
        except NotJson as error:
            raise forms.ValidationError(
                "Not valid JSON: %(error)s.", code="json", params={"error": error}
            ) from error
        except ValueError as error:  # an integer beyond Python's digit limit
            raise forms.ValidationError(
                "Not valid JSON: an integer is too large (%(error)s).",
                code="json",
                params={"error": error},
            ) from error
        try:
            payload = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError as error:  # "\ud800": a lone surrogate has no UTF-8
            raise forms.ValidationError(
                "Not valid JSON text: a string holds a lone surrogate (%(chars)s), "
                "which UTF-8 cannot encode.",
                code="json",
                params={"chars": repr(error.object[error.start : error.end])},
            ) from error
        try:
            JsonCodec(self.payload_type).decode(payload)
        except DecodeError as error:
            raise forms.ValidationError(
                "The consumer of %(queue)s cannot decode this payload: %(reason)s",
                code="payload_type",
                params={"queue": self.letter.queue, "reason": str(error)},
            ) from error
        return payload
