from datetime import UTC, datetime, timedelta

import pytest

from kew import Message, utcnow


def test_redelivery_counts_schedules_and_derives_a_stable_retry_id():
    original = Message({"a": 1}, message_id="abc", properties={"p": "1"})
    before = utcnow()
    retry = original.retry_after(timedelta(seconds=10))
    assert retry.delivery_count == 2
    assert retry.message_id == "abc#2"
    assert retry.origin_id == "abc"
    assert retry.properties == {"p": "1"}
    assert retry.deliver_at >= before + timedelta(seconds=10)
    again = retry.retry_after(timedelta(0))
    assert (again.message_id, again.origin_id) == ("abc#3", "abc")
    # The same retry sent twice (after a crash) has the same id, so a broker drops it.
    assert original.retry_after(timedelta(1)).message_id == retry.message_id


def test_redelivery_can_replace_the_data():
    assert Message(1).retry_after(timedelta(0), data=2).data == 2


def test_message_without_id_retries_without_id():
    assert Message("x").retry_after(timedelta(0)).message_id is None


def test_naive_deliver_at_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        Message("x", deliver_at=datetime(2030, 1, 1))  # noqa: DTZ001
    Message("x", deliver_at=datetime(2030, 1, 1, tzinfo=UTC))


def test_delivery_count_starts_at_one():
    with pytest.raises(ValueError, match="starts at 1"):
        Message("x", delivery_count=0)
