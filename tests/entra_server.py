"""`syncd entra serve --tls-dir … --require-auth` as a real process, for any test that needs the
fake Entra ID + Graph over HTTPS: client-credentials tokens, the CA to trust, and the /_sim/ controls.

    with entra_server(tmp_path, apps={"my-app": "my-secret"}) as server:
        credential = server.secret_credential("my-app", "my-secret")
        ... server.graph_url, server.authority, server.tenant_id, server.ca_path ...
        server.sim("POST", "auth/revoke")

`make_certificate` writes a self-signed certificate (PEM cert+key, cert alone, PKCS#12) for
`--app-cert` and azure-identity's CertificateCredential.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SYNCD = str(Path(sys.executable).with_name("syncd"))
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_APP = ("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "syncd-test-secret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    # The child imports the same syncd as this test run (a worktree on PYTHONPATH included).
    import syncd

    root = str(Path(syncd.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CertFiles:
    """A self-signed certificate: `pem` (certificate and unencrypted key), `cert_pem` (certificate
    only, what is registered on the app), `pfx` (PKCS#12 with `password`), and its thumbprints."""

    pem: Path
    cert_pem: Path
    pfx: Path
    password: str
    sha1: str
    sha256: str


def make_certificate(directory: Path, name: str, password: str = "pfx-password") -> CertFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files = CertFiles(
        pem=directory / f"{name}.pem",
        cert_pem=directory / f"{name}.crt.pem",
        pfx=directory / f"{name}.pfx",
        password=password,
        sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t is SHA-1
        sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
    )
    files.pem.write_bytes(cert_pem + key_pem)
    files.cert_pem.write_bytes(cert_pem)
    files.pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, None, serialization.BestAvailableEncryption(password.encode())
        )
    )
    return files


@dataclass
class EntraServer:
    """A running `syncd entra serve --tls-dir … --require-auth`."""

    workdir: Path
    port: int
    store: Path
    ca_path: Path
    tenant_id: str
    domain: str
    popen: subprocess.Popen[bytes]
    log: Path
    apps: dict[str, str] = field(default_factory=dict)  # client id -> secret

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.origin}/v1.0"

    @property
    def authority(self) -> str:
        return self.origin

    @property
    def token_url(self) -> str:
        return f"{self.origin}/{self.tenant_id}/oauth2/v2.0/token"

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on this server's origin that trusts its CA."""
        return httpx.Client(base_url=self.origin, verify=self.ssl_context(), timeout=30, **kwargs)

    def sim_response(self, method: str, path: str, json: Any = None) -> httpx.Response:
        path = path.lstrip("/")
        path = path[len("_sim/") :] if path.startswith("_sim/") else path
        return httpx.request(
            method, f"{self.origin}/_sim/{path}", json=json, verify=self.ssl_context(), timeout=60
        )

    def sim(self, method: str, path: str, json: Any = None) -> Any:
        """A /_sim/ control (`path` with or without the `/_sim/` prefix); asserts a 2xx answer."""
        r = self.sim_response(method, path, json)
        assert r.is_success, f"{method} /_sim/{path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def token_response(
        self, client_id: str, secret: str, scope: str = GRAPH_SCOPE, **form: str
    ) -> httpx.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope,
        }
        return httpx.post(self.token_url, data=data | form, verify=self.ssl_context(), timeout=30)

    def token(self, client_id: str | None = None, secret: str | None = None) -> str:
        """A fresh access token straight from the token endpoint (no client-side cache)."""
        if client_id is None:
            client_id, secret = next(iter(self.apps.items()))
        assert secret is not None
        r = self.token_response(client_id, secret)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def secret_credential(self, client_id: str | None = None, secret: str | None = None) -> Any:
        from azure.identity import ClientSecretCredential

        if client_id is None:
            client_id, secret = next(iter(self.apps.items()))
        assert secret is not None
        return ClientSecretCredential(
            self.tenant_id,
            client_id,
            secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=str(self.ca_path),
        )

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM; uvicorn waits for open keep-alive connections, so kill after `timeout`."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def generate_store(store: Path, users: int = 50, seed: int = 7, extra: Sequence[str] = ()) -> None:
    args = [
        SYNCD,
        "entra",
        "generate",
        "--users",
        str(users),
        "--seed",
        str(seed),
        "--store",
        str(store),
        *extra,
    ]
    proc = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"syncd entra generate exited {proc.returncode}: {proc.stderr[-2000:]}")


@contextlib.contextmanager
def entra_server(
    workdir: Path,
    *,
    apps: Mapping[str, str] | None = None,
    cert_apps: Mapping[str, Path] | None = None,
    token_lifetime: int | None = None,
    users: int = 50,
    seed: int = 7,
    store: Path | None = None,
    tls_dir: Path | None = None,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 30,
) -> Iterator[EntraServer]:
    """`syncd entra serve` over HTTPS with Entra authentication, as a real process.

    apps: client id -> secret (default: one app, DEFAULT_APP); cert_apps: client id -> a PEM file
    with its certificate. A new tenant of `users` users is generated into `store` unless that file
    exists already. The CA lives in `tls_dir` (default workdir/tls).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    apps = dict(apps) if apps is not None else dict([DEFAULT_APP])
    store = store or workdir / "tenant.db"
    tls_dir = tls_dir or workdir / "tls"
    if not store.exists():
        generate_store(store, users, seed)
    port = port or free_port()
    args = [
        SYNCD, "entra", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--store", str(store),
        "--tls-dir", str(tls_dir), "--require-auth",
    ]  # fmt: skip
    for client_id, secret in apps.items():
        args += ["--app", f"{client_id}:{secret}"]
    for client_id, cert in (cert_apps or {}).items():
        args += ["--app-cert", f"{client_id}:{cert}"]
    if token_lifetime is not None:
        args += ["--token-lifetime", str(token_lifetime)]
    args += list(extra_args)
    log = workdir / f"entra-{port}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(args, env=_env(env), cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    ca_path = tls_dir / "ca.pem"
    server = EntraServer(workdir, port, store, ca_path, "", "", popen, log, apps)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if popen.poll() is not None:
                raise AssertionError(f"syncd entra serve exited {popen.returncode}:\n{server.tail()}")
            try:
                if ca_path.exists():
                    tenant = httpx.get(
                        f"{server.origin}/_sim/tenant",
                        verify=ssl.create_default_context(cafile=str(ca_path)),
                        timeout=2,
                    ).json()
                    break
            except (httpx.HTTPError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"syncd entra serve did not answer in {startup_timeout}s:\n{server.tail()}"
                )
            time.sleep(0.05)
        server.tenant_id, server.domain = tenant["tenant_id"], tenant["domain"]
        yield server
    finally:
        server.stop()
