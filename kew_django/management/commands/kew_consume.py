"""manage.py kew_consume [QUEUE ...]: run the registered consumers."""

import logging
import os
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kew_django.observability import observed
from kew_django.runner import ComponentDied, Runner, stop_on_signals
from kew_django.workers.processes import Supervisor, consume_command
from kew_django.workers.registry import consumers


def run_or_exit(runner: Runner) -> None:
    """Run ``runner``; if one of its threads dies, exit with status 1 (CommandError).

    If the shutdown grace ran out with work in flight, exit 0 at once, as
    a kill would: nothing waits on the threads left behind or their locks.
    """
    try:
        runner.run()
    except ComponentDied as error:
        raise CommandError(str(error), returncode=1) from error
    if runner.abandoned:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def supervise(queues: list[str], *, concurrency, provider: str, processes: int) -> None:
    """Run ``processes`` kew_consume children; exit non-zero if one dies unexpectedly."""
    if processes < 1:
        raise CommandError(f"--processes must be at least 1, got {processes}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    command = consume_command(queues, concurrency=concurrency, provider=provider)
    supervisor = Supervisor(command, processes, env=env)
    signal.signal(signal.SIGTERM, lambda signum, frame: supervisor.stop())
    signal.signal(signal.SIGINT, lambda signum, frame: supervisor.stop())
    if supervisor.run() != 0:
        raise CommandError("a consumer process exited unexpectedly", returncode=1)


def select_specs(queues: list[str]):
    """Return the registered consumers of ``queues`` (all of them if none is named)."""
    consumers.validate()
    if not queues:
        return list(consumers)
    try:
        return [consumers.get(queue) for queue in queues]
    except KeyError as error:
        raise CommandError(error.args[0]) from None


def add_consumer_arguments(parser) -> None:
    """Add the queues and options that kew_consume and kew_run share."""
    parser.add_argument("queues", nargs="*", metavar="QUEUE")
    parser.add_argument("--concurrency", type=int, help="worker threads per queue")
    parser.add_argument("--provider", default="default", help="KEW['PROVIDERS'] alias")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics /healthz /readyz on this port (0: any free one)",
    )


class Command(BaseCommand):
    help = "Consume queues with their @consumer handlers (all registered queues by default)."

    def add_arguments(self, parser):
        add_consumer_arguments(parser)
        parser.add_argument(
            "--processes", type=int, default=1, help="consumer processes (for CPU-bound handlers)"
        )

    def handle(
        self, *args, queues, concurrency, provider, metrics_port=None, processes=1, **options
    ):
        specs = select_specs(queues)
        if not specs:
            raise CommandError(
                "no consumers registered: declare them with @consumer "
                "in an installed app's consumers.py"
            )
        if processes != 1:
            supervise(queues, concurrency=concurrency, provider=provider, processes=processes)
            return
        runner = Runner(specs, provider=provider, concurrency=concurrency)
        stop_on_signals(runner.stop)
        with observed(runner, "consume", metrics_port):
            run_or_exit(runner)
