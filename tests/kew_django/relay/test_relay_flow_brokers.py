"""Real brokers pushing back: a RabbitMQ memory alarm pauses the relay; Artemis BLOCK over STOMP.

What Artemis 2.40 does to a STOMP producer on a full address (verified
here): ``BLOCK`` does not hold it back (core producers only wait for
credits), every SEND still gets its receipt; ``FAIL`` answers an ERROR
that names no cause. See docs/backpressure.md.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

import kew
from kew_django import Channel
from kew_django.relay.publisher import Relay
from tests.contract.helpers import receive_all
from tests.harness.artemis.local import LocalArtemis
from tests.harness.e2e import wait_until
from tests.harness.services import ServiceUnavailable, service_missing, service_unsupported
from tests.kew_django.conftest import Job
from tests.kew_django.relay.test_relay_outage import Lines
from tests.kew_django.relay.test_relay_pause import PAUSED, RESUMED, rows, running

pytestmark = pytest.mark.slow
DEFAULT_WATERMARK = "0.4"  # RabbitMQ's default, which the harness's node keeps
BLOCKED_PREFIX = "flow.block."
SMALL = 20_000  # bytes: about 15 messages of 1 kB


class SmallAddresses(LocalArtemis):
    """A broker whose ``flow.block.#`` addresses hold at most ``SMALL`` bytes, policy BLOCK."""

    def _configure(self) -> None:
        assert self.instance_dir is not None
        path = self.instance_dir / "etc" / "broker.xml"
        setting = (
            f'<address-setting match="{BLOCKED_PREFIX}#">\n'
            f"            <max-size-bytes>{SMALL}</max-size-bytes>\n"
            "            <address-full-policy>BLOCK</address-full-policy>\n"
            "         </address-setting>\n"
            '         <address-setting match="#">'
        )
        xml = path.read_text()
        assert '<address-setting match="#">' in xml
        path.write_text(xml.replace('<address-setting match="#">', setting, 1))


@pytest.fixture(scope="module")
def small_artemis() -> Iterator[SmallAddresses]:
    broker = SmallAddresses()
    try:
        broker.start()
    except ServiceUnavailable as missing:
        service_missing(missing.name, missing.install_hint)
    try:
        yield broker
    finally:
        broker.close()


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_a_rabbitmq_memory_alarm_pauses_the_relay_and_clearing_it_resumes(rabbitmq_server, queue):
    if not hasattr(rabbitmq_server, "ctl"):
        service_unsupported("raising a memory alarm (rabbitmqctl)")
    provider = kew.connect(f"{rabbitmq_server.url}?confirm_timeout=3")
    Channel(queue, payload=Job).send_many([Job(i) for i in range(50)])
    relay = Relay(provider, queues=[queue], poll_interval=0.05, batch_size=10)
    rabbitmq_server.ctl("set_vm_memory_high_watermark", "0.00001")  # every publisher blocked
    try:
        with Lines("kew_django.relay.publisher") as lines, running(relay):
            assert wait_until(lambda: relay.pause.paused, 60), lines.messages
            assert rows(queue) == {("pending", 0)}  # waiting in the outbox, no attempt spent
            rabbitmq_server.ctl("set_vm_memory_high_watermark", DEFAULT_WATERMARK)
            assert wait_until(lambda: rows(queue) == {("sent", 0)}, 60), rows(queue)
            assert wait_until(lambda: not relay.pause.paused, 10)
    finally:
        rabbitmq_server.ctl("set_vm_memory_high_watermark", DEFAULT_WATERMARK)
    flow = [m for m in lines.messages if PAUSED in m or RESUMED in m]
    assert len(flow) == 2 and PAUSED in flow[0] and RESUMED in flow[1], lines.messages
    assert "RabbitMQ is blocking publishers" in flow[0]
    ids = [delivery.message_id for delivery in receive_all(provider, queue, 50)]
    assert len(set(ids)) == 50  # every message once
    assert provider.pending(queue) == 0  # and no second copy behind them
    assert relay.stats.rejected == 0
    provider.close()


@pytest.mark.artemis
@pytest.mark.django_db(transaction=True)
def test_artemis_block_does_not_hold_a_stomp_relay_back_and_nothing_is_lost(small_artemis):
    queue = f"{BLOCKED_PREFIX}{uuid.uuid4().hex[:12]}"
    provider = kew.connect(f"{small_artemis.url}?receipt_timeout=10")
    payload = Job(0, note="x" * 1000)
    Channel(queue, payload=Job).send_many([Job(i, payload.note) for i in range(100)])
    relay = Relay(provider, queues=[queue], poll_interval=0.05, batch_size=10)
    with running(relay):
        assert wait_until(lambda: rows(queue) == {("sent", 0)}, 60), rows(queue)
    stat = small_artemis.queue_stat(queue)
    assert stat is not None and int(stat["messageCount"]) == 100  # far past max-size-bytes
    assert not relay.pause.paused and relay.stats.rejected == 0
    ids = [delivery.message_id for delivery in receive_all(provider, queue, 100)]
    assert len(set(ids)) == 100
    provider.close()


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_a_relay_paused_by_a_rabbitmq_alarm_stops_when_asked(rabbitmq_server, queue):
    if not hasattr(rabbitmq_server, "ctl"):
        service_unsupported("raising a memory alarm (rabbitmqctl)")
    provider = kew.connect(f"{rabbitmq_server.url}?confirm_timeout=2")
    Channel(queue, payload=Job).send_many([Job(i) for i in range(10)])
    relay = Relay(provider, queues=[queue], poll_interval=0.05)
    rabbitmq_server.ctl("set_vm_memory_high_watermark", "0.00001")
    try:
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))
        thread.start()
        assert wait_until(lambda: relay.pause.paused, 60)
        stop.set()
        thread.join(15)  # a blocked connection is dropped, not closed by a handshake
        assert not thread.is_alive(), "the relay hung on the blocked connection"
        assert rows(queue) == {("pending", 0)}
    finally:
        rabbitmq_server.ctl("set_vm_memory_high_watermark", DEFAULT_WATERMARK)
        provider.close()
