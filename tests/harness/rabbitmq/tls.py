"""Throwaway certificates for a node's TLS listener, made with the ``openssl`` command.

:func:`make_authority` makes a CA (an EC P-256 key and a self-signed
certificate); :meth:`Authority.issue` signs a server certificate for
``127.0.0.1`` and ``localhost`` with it. Everything is written in the
directory given (a node's temp dir): nothing is ever committed, and
nothing outlives the test run. Keys are not encrypted.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.services import ServiceStartError, ServiceUnavailable

__all__ = ["Authority", "ServerCertificate", "make_authority"]

DAYS = "7"  # a test run is over long before
# prompt = no takes the subject from the [dn] section; the other sections are extensions
CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {name}
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"]


@dataclass(frozen=True)
class ServerCertificate:
    """A server's certificate and key (PEM), and the CA certificate that signed it."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class Authority:
    """A throwaway CA: its certificate (``cert``, the file clients trust) and key."""

    cert: Path
    key: Path
    directory: Path

    def issue(self, name: str = "server") -> ServerCertificate:
        """Sign a certificate for 127.0.0.1 and localhost as ``<name>.pem`` and ``<name>.key``."""
        config = _write_config(self.directory, "localhost")
        key, request = self.directory / f"{name}.key", self.directory / f"{name}.csr"
        cert = self.directory / f"{name}.pem"
        _openssl("req", "-new", "-config", config, *KEY, "-keyout", key, "-out", request)
        serial = f"0x{secrets.token_hex(8)}"
        _openssl(
            "x509", "-req", "-in", request, "-CA", self.cert, "-CAkey", self.key,
            "-set_serial", serial, "-days", DAYS, "-out", cert,
            "-extfile", config, "-extensions", "server",
        )  # fmt: skip
        return ServerCertificate(cert=cert, key=key, ca=self.cert)


def make_authority(directory: Path, name: str = "Kew test CA") -> Authority:
    """Make a CA in ``directory`` (created if missing): ``ca.pem`` and ``ca.key``."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = Authority(directory / "ca.pem", directory / "ca.key", directory)
    config = _write_config(directory, f"{name} {secrets.token_hex(4)}")  # unique: never mistaken
    _openssl(
        "req", "-x509", "-config", config, "-extensions", "ca", *KEY,
        "-keyout", authority.key, "-out", authority.cert, "-days", DAYS,
    )  # fmt: skip
    return authority


def _write_config(directory: Path, common_name: str) -> Path:
    path = directory / f"openssl-{common_name.replace(' ', '-')}.cnf"
    path.write_text(CONFIG.format(name=common_name))
    return path


def _openssl(*args: str | Path) -> None:
    """Run ``openssl <args>``; ServiceUnavailable without it, ServiceStartError if it fails."""
    binary = shutil.which("openssl")
    if binary is None:
        raise ServiceUnavailable("openssl", "`apt-get install openssl` (Debian)")
    result = subprocess.run(
        [binary, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceStartError(f"openssl {args[0]} failed:\n{result.stdout}{result.stderr}")
