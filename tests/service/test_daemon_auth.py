"""`syncd run` against the fake Entra with authentication on, over TLS, for longer than ten token lifetimes.

Two daemons, one with a client secret and one with a certificate (PKCS#12 with a password), against
`syncd entra serve --tls-dir ... --require-auth --token-lifetime 5`: every run succeeds, the fake
issues each application a new token again and again, and no secret or token appears in any log
line, even at debug level.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from entra_server import entra_server, make_certificate
from procs import SYNCD, Proc, base_env, free_port, runs_of, syncd, wait_for
from sqlalchemy import create_engine

SECRET_CLIENT = "7d3e4f50-6172-4839-8cad-2e3f4a5b6c7d"
CERT_CLIENT = "8e4f5061-7283-494a-9dbe-3f4a5b6c7d8e"
SECRET = "daemon~secret.value-9876543210"
LIFETIME = 5
RUN_FOR = 11 * LIFETIME  # longer than ten token lifetimes


@pytest.mark.slow
def test_daemons_with_a_secret_and_a_certificate_renew_their_tokens_and_log_no_secret(tmp_path: Path) -> None:
    cert = make_certificate(tmp_path / "certs", "syncd-daemon", password="pfx-pass-word")
    with entra_server(
        tmp_path / "entra",
        apps={SECRET_CLIENT: SECRET},
        cert_apps={CERT_CLIENT: cert.cert_pem},
        token_lifetime=LIFETIME,
        users=300,
    ) as server:
        common = {
            "SYNCD_DIRECTORY_URL": server.graph_url,
            "SYNCD_DIRECTORY_AUTHORITY": server.authority,
            "SYNCD_DIRECTORY_TENANT_ID": server.tenant_id,
            "SYNCD_DIRECTORY_CA_BUNDLE": str(server.ca_path),
            "SYNCD_DELTA_INTERVAL_SECONDS": "5",
            "SYNCD_LOG_LEVEL": "debug",
        }
        credentials = {
            "secret": {"SYNCD_DIRECTORY_CLIENT_ID": SECRET_CLIENT, "SYNCD_DIRECTORY_CLIENT_SECRET": SECRET},
            "cert": {
                "SYNCD_DIRECTORY_CLIENT_ID": CERT_CLIENT,
                "SYNCD_DIRECTORY_CERTIFICATE_PATH": str(cert.pfx),
                "SYNCD_DIRECTORY_CERTIFICATE_PASSWORD": cert.password,
            },
        }
        server.sim("POST", "auth/counters/reset")
        daemons: dict[str, tuple[Proc, str]] = {}
        try:
            for name, credential in credentials.items():
                workdir = tmp_path / name
                workdir.mkdir()
                db_url = f"sqlite:///{workdir / 'syncd.db'}"
                env = base_env(SYNCD_DATABASE_URL=db_url, **common, **credential)
                syncd(["db", "upgrade"], env, workdir)
                syncd(["env", "create", "prod", "--type", "production"], env, workdir)
                port = free_port()
                log = workdir / "daemon.log"
                with log.open("wb") as out:
                    popen = subprocess.Popen(
                        [SYNCD, "run", "--http-port", str(port)], env=env, cwd=workdir, stdout=out, stderr=out
                    )
                proc = Proc(name, popen, log)
                daemons[name] = (proc, db_url)
                try:
                    wait_for(
                        lambda p=proc, port=port: (
                            p.popen.poll() is None
                            and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                        ),
                        90,  # a loaded CI machine starts a daemon slowly
                        f"the {name} daemon to answer /healthz",
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{exc}:\n{proc.tail()}") from None
            time.sleep(RUN_FOR)
            for proc, _ in daemons.values():
                assert proc.stop() == 0, proc.tail()
        finally:
            for proc, _ in daemons.values():
                if proc.popen.poll() is None:
                    proc.popen.kill()
        counters = server.sim("GET", "auth/counters")

    for name, (proc, db_url) in daemons.items():
        engine = create_engine(db_url)
        runs = runs_of(engine)
        engine.dispose()
        assert len(runs) >= RUN_FOR // 5 - 1, (name, runs)
        assert {r["outcome"] for r in runs} == {"succeeded"}, (name, [r.get("error") for r in runs])
        logged = proc.log.read_text()
        assert "sync.summary" in logged
        for secret in (SECRET, cert.password):
            assert secret not in logged, f"a secret in the {name} daemon's log"
        assert "eyJ" not in logged, f"a token (a JWT) in the {name} daemon's log"
    issued = counters["tokens_issued_by_client"]
    # A token lives 5 s: the credential cannot reuse it across runs, so each run has its own.
    assert issued[SECRET_CLIENT] >= 10 and issued[CERT_CLIENT] >= 10, issued
    assert counters["token_failures"] == 0 and counters["graph_unauthorized"] == 0, counters
