"""CPU meters for the servers of the peers bench, and py-spy profile summaries."""

from __future__ import annotations

from pathlib import Path

from tests.harness.processes import children, cpu_seconds, group_cpu_seconds


class PostgresCpu:
    """CPU of the harness's PostgreSQL: the postmaster and every backend."""

    def __init__(self, server):
        self.pid = self._postmaster(server)

    @staticmethod
    def _postmaster(server) -> int | None:
        conn = server.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("select pg_backend_pid()")
                backend = cursor.fetchone()[0]
        finally:
            conn.close()
        stat = Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()
        return int(stat[1])  # the postmaster is every backend's parent

    def cpu(self) -> float:
        """CPU of the postmaster, its live children (backends, workers) and its reaped ones.

        Each backend calls setsid() when it starts, so the postmaster's process
        group holds none of them: they are found by their parent.
        """
        if self.pid is None:
            return 0.0
        return cpu_seconds(self.pid) + sum(cpu_seconds(pid) for pid in children(self.pid))


class GroupCpu:
    """CPU of a broker the harness started in a process group of its own (Artemis, RabbitMQ)."""

    def __init__(self, popen):
        self.pgid = popen.pid

    def cpu(self) -> float:
        return group_cpu_seconds(self.pgid)


class NoCpu:
    """No broker: the database provider's queues live in PostgreSQL."""

    def cpu(self) -> float:
        return 0.0


def summarize_profiles(logs: Path, top: int = 12) -> None:
    """Print, per profiled process, where its samples were: own time and time below, per frame."""
    for path in sorted(logs.glob("profile-*.txt")):
        own: dict[str, int] = {}
        below: dict[str, int] = {}
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + samples
            for frame in set(frames):
                below[frame] = below.get(frame, 0) + samples
        if not total:
            continue
        print(f"\n{path.name}: {total} samples of busy threads (py-spy leaves idle ones out)")
        print("  own time:")
        for frame, samples in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {samples / total:6.1%}  {frame[:110]}")
        print("  in or below (kew and kew_django frames):")
        ours = [kv for kv in below.items() if "/kew" in kv[0] or "kew_django" in kv[0]]
        for frame, samples in sorted(ours, key=lambda kv: -kv[1])[:top]:
            print(f"    {samples / total:6.1%}  {frame[:110]}")
