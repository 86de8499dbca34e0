"""Make a throwaway broker instance with ``bin/artemis create``, on free ports."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from tests.harness.artemis.base import CORE_PORT, STOMP_PORT, java_env
from tests.harness.services import ServiceStartError, port_is_free

__all__ = [
    "JOURNAL_BUFFER_TIMEOUT_NS",
    "acceptor_ports",
    "create_instance",
    "edit_broker_xml",
    "free_offset",
]

JOURNAL_BUFFER_TIMEOUT_NS = 100_000
"""How long the journal gathers writes before it flushes (and syncs) them: 0.1 ms.

``artemis create`` measures the disk and writes this setting; the harness
passes ``--no-autotune`` (the measurement takes seconds), which would leave
the NIO journal's default of 3.33 ms, and every receipt, so every relay
batch and every ``send``, would wait that long. 0.1 ms is what the
autotune chose on the project's 2-core machines (104,000 ns).
"""


def create_instance(
    home: Path,
    directory: Path,
    *,
    user: str,
    password: str,
    java_memory: str,
    java_options: Sequence[str],
    fsync: bool,
    extra_args: Sequence[str] = (),
    port_offset: int | None = None,
) -> tuple[int, int]:
    """Create a broker instance in ``directory`` (replacing it); return (STOMP, core) ports.

    Every acceptor listens on 127.0.0.1 at its default port plus one random
    offset for which STOMP and core are free; the ports written to
    ``etc/broker.xml`` are checked again. ``port_offset`` fixes the offset
    instead (a cluster's nodes must know each other's ports). Raises
    :class:`~tests.harness.services.ServiceStartError` if ``create`` fails or a
    port is taken.
    """
    shutil.rmtree(directory, ignore_errors=True)
    offset = port_offset if port_offset is not None else free_offset()
    command = [
        str(home / "bin" / "artemis"), "create", str(directory),
        "--silent",
        "--user", user, "--password", password, "--require-login",
        "--no-web", "--no-amqp-acceptor", "--no-hornetq-acceptor", "--no-mqtt-acceptor",
        "--no-autotune", "--host", "127.0.0.1", "--port-offset", str(offset),
        f"--java-memory={java_memory}",
        *(f"--java-options={option}" for option in java_options),
    ]  # fmt: skip
    if not fsync:
        command.append("--no-fsync")
    command += extra_args
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
        env=java_env(),
    )
    if result.returncode != 0:
        raise ServiceStartError(
            f"`artemis create` failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    edit_broker_xml(directory, journal_buffer_timeout)
    ports = acceptor_ports(directory / "etc" / "broker.xml")
    busy = {name: port for name, port in ports.items() if not port_is_free(port)}
    if busy:
        raise ServiceStartError(f"acceptor ports already taken: {busy}")
    stomp = ports.get("stomp") or ports.get("artemis") or STOMP_PORT + offset
    core = ports.get("artemis") or CORE_PORT + offset
    return stomp, core


def edit_broker_xml(instance_dir: Path, *edits: Callable[[str], str]) -> None:
    """Apply text ``edits`` to an instance's ``etc/broker.xml`` (before it runs)."""
    path = instance_dir / "etc" / "broker.xml"
    text = path.read_text()
    for edit in edits:
        text = edit(text)
    path.write_text(text)


def journal_buffer_timeout(xml: str) -> str:
    """Set ``journal-buffer-timeout`` (``JOURNAL_BUFFER_TIMEOUT_NS``) in ``xml``, or replace it."""
    setting = f"<journal-buffer-timeout>{JOURNAL_BUFFER_TIMEOUT_NS}</journal-buffer-timeout>"
    if "<journal-buffer-timeout>" in xml:
        return re.sub(r"<journal-buffer-timeout>[^<]*</journal-buffer-timeout>", setting, xml)
    anchor = "</journal-datasync>"
    if anchor not in xml:
        raise ServiceStartError(f"broker.xml has no {anchor} to put {setting} after")
    return xml.replace(anchor, f"{anchor}\n      {setting}", 1)


def free_offset(span: int = 1) -> int:
    """A port offset for which STOMP and core are free, for ``span`` instances 10 apart."""
    for _ in range(50):
        # >= 61613 is above Linux's ephemeral range: outgoing connections never take these
        offset = random.randint(1, 3800 - 10 * span)
        ports = [base + offset + 10 * n for n in range(span) for base in (STOMP_PORT, CORE_PORT)]
        if all(port_is_free(port) for port in ports):
            return offset
    return offset


def acceptor_ports(broker_xml: Path) -> dict[str, int]:
    """``{acceptor name: port}`` from an instance's ``etc/broker.xml``."""
    ports: dict[str, int] = {}
    root = ET.parse(broker_xml).getroot()
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "acceptor" or not element.text:
            continue
        port = urlsplit(element.text.strip()).port
        if port is not None:
            ports[element.get("name") or f"acceptor{len(ports)}"] = port
    return ports
