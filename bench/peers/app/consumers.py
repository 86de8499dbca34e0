"""Kew's consumer: the same one-insert handler, prefetch 100, in a transaction, then ack."""

import os
from dataclasses import dataclass

from bench.peers.app.handler import record
from kew_django import Channel, consumer


@dataclass
class Job:
    n: int
    path: str = "/data/lab-3/2026-11-28/plate-0042/well-B7/field-003.ome.tiff"


SYSTEM = os.environ.get("PEERS_SYSTEM", "kew")  # which Kew set-up this process is
jobs = Channel("bench.peers.kew", payload=Job)


@consumer(jobs, prefetch=100)
def handle(job: Job) -> None:
    record(SYSTEM, job.n)
