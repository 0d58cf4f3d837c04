"""A local CA and a server certificate for serving the fake tenant over HTTPS.

`ensure_tls(dir)` makes them once with trustme (a CA in `ca.pem` with its key in `ca-key.pem`, a
certificate for 127.0.0.1 and localhost with its chain in `server.pem`, its key in `server-key.pem`;
keys mode 0600) and reuses them on later starts, so a client that trusts `ca.pem` once keeps
trusting the server. `hosts` adds names the certificate must also cover (a container's service
name, say); when the certificate lacks one, a new one is issued by the same CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
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


def ensure_tls(directory: str | os.PathLike[str], hosts: tuple[str, ...] = ()) -> TlsFiles:
    """The CA and server certificate files in `directory`, made there if any is missing, and the
    server certificate issued again (by the same CA) when it does not cover every one of `hosts`.

    Raises OSError when the folder cannot be written.
    """
    root = Path(directory)
    files = TlsFiles(root / CA_FILE, root / CERT_FILE, root / KEY_FILE)
    wanted = tuple(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    present = all(
        p.is_file() and p.stat().st_size > 0 for p in (files.ca_path, files.cert_path, files.key_path)
    )
    if present and set(wanted) <= _covered(files.cert_path):
        return files
    import trustme

    root.mkdir(parents=True, exist_ok=True)
    ca_key = root / CA_KEY_FILE
    if present and ca_key.is_file():
        ca = trustme.CA.from_pem(files.ca_path.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="syncd fake Entra", organization_unit_name="local CA")
        _write(ca_key, ca.private_key_pem.bytes(), 0o600)
        _write(files.ca_path, ca.cert_pem.bytes(), 0o644)
    cert = ca.issue_cert(*wanted)
    _write(files.key_path, cert.private_key_pem.bytes(), 0o600)
    _write(files.cert_path, b"".join(blob.bytes() for blob in cert.cert_chain_pems), 0o644)
    return files


def _covered(cert_path: Path) -> set[str]:
    """The host names and addresses the server certificate is for (its subjectAltName)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return set()
    return {
        *names.get_values_for_type(x509.DNSName),
        *(str(a) for a in names.get_values_for_type(x509.IPAddress)),
    }
