"""The handler all three systems run: one ORM insert."""

import time


def record(system: str, n: int) -> None:
    """Insert one Effect row, stamped with the time the handler started."""
    started = time.time()
    from bench.peers.app.models import Effect

    Effect.objects.create(system=system, n=n, started=started)
