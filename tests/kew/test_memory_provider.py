import threading

from kew import connect
from kew.providers.base import Outgoing
from kew.providers.memory import MemoryProvider


def test_connect_memory_url_gives_a_fresh_provider():
    first, second = connect("memory://"), connect("memory://")
    assert isinstance(first, MemoryProvider)
    with first.producer() as producer:
        producer.send("q", b"x")
    assert (first.pending("q"), second.pending("q")) == (1, 0)


def test_browse_shows_waiting_messages_without_taking_them():
    provider = MemoryProvider()
    with provider.producer() as producer:
        producer.send_many([Outgoing("q", b"a"), Outgoing("q", b"b")])
    assert [d.payload for d in provider.browse("q")] == [b"a", b"b"]
    assert provider.pending("q") == 2


def test_clear_forgets_everything():
    provider = MemoryProvider()
    with provider.producer() as producer:
        producer.send("q", b"a")
    provider.clear()
    assert provider.pending("q") == 0


def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing():
    provider = MemoryProvider()
    per_producer, producers = 500, 4
    received: list[bytes] = []
    lock = threading.Lock()

    def produce(n):
        with provider.producer() as producer:
            for i in range(per_producer):
                producer.send("q", f"{n}-{i}".encode())

    def consume():
        with provider.receiver("q") as consumer:
            while (delivery := consumer.receive(0.5)) is not None:
                delivery.ack()
                with lock:
                    received.append(delivery.payload)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    threads += [threading.Thread(target=consume) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(received) == per_producer * producers
    assert len(set(received)) == len(received)
