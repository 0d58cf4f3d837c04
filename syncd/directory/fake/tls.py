"""A local CA and a server certificate for serving the fake tenant over HTTPS.

`ensure_tls(dir)` makes them once with trustme (a CA in `ca.pem`, a certificate for 127.0.0.1
and localhost with its chain in `server.pem`, its key in `server-key.pem`, mode 0600) and reuses
them on later starts, so a client that trusts `ca.pem` once keeps trusting the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_tls(directory: str | os.PathLike[str]) -> TlsFiles:
    """The CA and server certificate files in `directory`, made there if any is missing."""
    root = Path(directory)
    files = TlsFiles(root / CA_FILE, root / CERT_FILE, root / KEY_FILE)
    if all(p.is_file() and p.stat().st_size > 0 for p in (files.ca_path, files.cert_path, files.key_path)):
        return files
    import trustme

    root.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="syncd fake Entra", organization_unit_name="local CA")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    _write(files.key_path, cert.private_key_pem.bytes(), 0o600)
    _write(files.cert_path, b"".join(blob.bytes() for blob in cert.cert_chain_pems), 0o644)
    _write(files.ca_path, ca.cert_pem.bytes(), 0o644)
    return files
