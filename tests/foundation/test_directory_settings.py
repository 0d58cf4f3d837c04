"""The directory credential settings: which credential they describe, and one-line errors for the rest.

Settings come from SYNCD_* variables, syncd.toml or the command line; secrets only from the first two.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from syncd.errors import ConfigError
from syncd.settings import load_settings
from syncd.sync.directory import credential_config

SYNCD = str(Path(sys.executable).with_name("syncd"))
TENANT = "8d2d7e2c-0b5a-4c43-9a2e-1c6f0e3b8a11"
CLIENT = "3f1a9b6e-2c4d-4e8f-9a1b-5c6d7e8f9a0b"
SECRET = "s3cret~value.that-must-not-show"


@pytest.fixture
def cert_files(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("syncd-client")
    pem = tmp_path / "client.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(pem))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    pfx = tmp_path / "client.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"syncd",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(b"pfx-password"),
        )
    )
    return {"pem": pem, "pfx": pfx, "ca": tmp_path / "ca.pem"}


def test_no_credential_settings_keep_the_embedded_default(clean_env: Path) -> None:
    s = load_settings()
    assert s.is_embedded_directory and s.credential_kind is None and credential_config(s) is None


def test_a_client_secret_points_at_the_public_cloud_graph(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", TENANT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_SECRET", SECRET)
    s = load_settings()
    assert s.credential_kind == "client-secret" and not s.is_embedded_directory
    assert s.directory_url == "https://graph.microsoft.com/v1.0"
    config = credential_config(s)
    assert config is not None
    assert (config.authority, config.scope) == (
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com/.default",
    )
    assert SECRET not in str(s.masked()) and SECRET not in repr(config)


@pytest.mark.parametrize(
    ("cloud", "authority", "graph"),
    [
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("USGOV-DOD", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_national_clouds_by_name(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, cloud: str, authority: str, graph: str
) -> None:
    monkeypatch.setenv("SYNCD_DIRECTORY_CREDENTIAL", "managed-identity")
    monkeypatch.setenv("SYNCD_DIRECTORY_AUTHORITY", cloud)
    s = load_settings()
    config = credential_config(s)
    assert config is not None and config.kind == "managed-identity"
    assert s.directory_url == graph + "/v1.0"
    assert (config.authority, config.scope) == (authority, graph + "/.default")
    assert not config.custom_authority


def test_a_custom_authority_needs_its_graph_url_and_turns_instance_discovery_off(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", TENANT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("SYNCD_DIRECTORY_AUTHORITY", "https://127.0.0.1:8443")
    with pytest.raises(ConfigError, match="give its Graph base URL in directory_url"):
        load_settings()
    s = load_settings(directory_url="https://127.0.0.1:8443/v1.0")
    config = credential_config(s)
    assert config is not None and config.custom_authority
    assert config.scope == "https://127.0.0.1:8443/.default"


def test_certificates_pem_and_pkcs12(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, cert_files: dict[str, Path]
) -> None:
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", TENANT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT)
    assert load_settings(directory_certificate_path=str(cert_files["pem"])).credential_kind == "certificate"
    monkeypatch.setenv("SYNCD_DIRECTORY_CERTIFICATE_PASSWORD", "pfx-password")
    s = load_settings(directory_certificate_path=str(cert_files["pfx"]))
    assert s.credential_kind == "certificate" and "pfx-password" not in str(s.masked())
    monkeypatch.setenv("SYNCD_DIRECTORY_CERTIFICATE_PASSWORD", "wrong")
    with pytest.raises(
        ConfigError, match=r"client\.pfx.*neither a PEM file nor a PKCS#12 file this password opens"
    ):
        load_settings(directory_certificate_path=str(cert_files["pfx"]))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SYNCD_DIRECTORY_CLIENT_ID": CLIENT}, "no credential"),
        ({"SYNCD_DIRECTORY_CLIENT_SECRET": SECRET}, "directory_tenant_id is required"),
        (
            {
                "SYNCD_DIRECTORY_TENANT_ID": TENANT,
                "SYNCD_DIRECTORY_CLIENT_ID": "my-app",
                "SYNCD_DIRECTORY_CLIENT_SECRET": "x",
            },
            "directory_client_id='my-app': an application \\(client\\) id is a GUID",
        ),
        (
            {
                "SYNCD_DIRECTORY_TENANT_ID": "not a tenant!",
                "SYNCD_DIRECTORY_CLIENT_ID": CLIENT,
                "SYNCD_DIRECTORY_CLIENT_SECRET": "x",
            },
            "directory_tenant_id='not a tenant!'",
        ),
        (
            {"SYNCD_DIRECTORY_CREDENTIAL": "azure-cli", "SYNCD_DIRECTORY_CLIENT_SECRET": "x"},
            "does not use it",
        ),
        ({"SYNCD_DIRECTORY_CREDENTIAL": "kerberos"}, "directory_credential='kerberos'"),
        (
            {
                "SYNCD_DIRECTORY_TENANT_ID": TENANT,
                "SYNCD_DIRECTORY_CLIENT_ID": CLIENT,
                "SYNCD_DIRECTORY_CLIENT_SECRET": "x",
                "SYNCD_DIRECTORY_CERTIFICATE_PATH": "/nonexistent.pem",
            },
            "both directory_client_secret and directory_certificate_path",
        ),
        (
            {
                "SYNCD_DIRECTORY_TENANT_ID": TENANT,
                "SYNCD_DIRECTORY_CLIENT_ID": CLIENT,
                "SYNCD_DIRECTORY_CERTIFICATE_PATH": "/nonexistent.pem",
            },
            "directory_certificate_path='/nonexistent.pem': cannot read it",
        ),
        ({"SYNCD_DIRECTORY_AUTHORITY": "http://login.example"}, "an http:// authority is refused"),
        (
            {"SYNCD_DIRECTORY_AUTHORITY": "https://user:pw@login.example"},
            "'https://\\*\\*\\*\\*@login.example'",
        ),
        (
            {"SYNCD_DIRECTORY_AUTHORITY": "https://login.example/x?y=1"},
            "no user, password, query or fragment",
        ),
        (
            {"SYNCD_DIRECTORY_AUTHORITY": "https://login.example/tenant"},
            "the tenant goes in directory_tenant_id",
        ),
        (
            {"SYNCD_DIRECTORY_CREDENTIAL": "default", "SYNCD_DIRECTORY_TOKEN": "fixed"},
            "directory_token is set, and so is a default credential",
        ),
        (
            {"SYNCD_DIRECTORY_CA_BUNDLE": "/nonexistent-ca.pem"},
            "directory_ca_bundle='/nonexistent-ca.pem': no such file",
        ),
        (
            {"SYNCD_DIRECTORY_CREDENTIAL": "default", "SYNCD_DIRECTORY_URL": "http://graph.example/v1.0"},
            "must be reached over https://",
        ),
        (
            {"SYNCD_DIRECTORY_CREDENTIAL": "default", "SYNCD_DIRECTORY_URL": "embedded"},
            "the built-in fake tenant takes no credential",
        ),
    ],
)
def test_bad_credential_settings_are_one_line_errors(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings()
    assert "\n" not in str(caught.value) and SECRET not in str(caught.value)


def test_the_command_line_refuses_bad_settings_with_exit_2_and_masks_secrets(clean_env: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "SYNCD_DIRECTORY_TENANT_ID": TENANT,
        "SYNCD_DIRECTORY_CLIENT_SECRET": SECRET,
    }
    bad = subprocess.run([SYNCD, "config", "show"], env=env, capture_output=True, text=True, cwd=clean_env)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "directory_client_id is required" in bad.stderr
    good = subprocess.run(
        [SYNCD, "--directory-client-id", CLIENT, "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=clean_env,
    )
    assert good.returncode == 0, good.stderr
    assert SECRET not in good.stdout and CLIENT in good.stdout and "graph.microsoft.com" in good.stdout
    assert not (clean_env / "syncd.db").exists()  # nothing written


def test_ids_are_taken_in_any_spelling_and_kept_in_one(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", "{" + TENANT.upper() + "}")
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT.replace("-", "").upper())
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("SYNCD_DIRECTORY_URL", "")  # exported empty: unset, so the cloud's Graph
    s = load_settings()
    assert (s.directory_tenant_id, s.directory_client_id) == (TENANT, CLIENT)
    assert s.directory_url == "https://graph.microsoft.com/v1.0"
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", "Contoso.OnMicrosoft.com")
    assert load_settings().directory_tenant_id == "contoso.onmicrosoft.com"


def test_a_secret_of_the_wrong_type_is_not_shown_in_the_error(clean_env: Path) -> None:
    (clean_env / "syncd.toml").write_text('directory_client_secret = ["hunter2"]\nadmin_token = 424242\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value) and "********" in str(caught.value)


def test_a_key_that_is_not_the_certificates_is_refused(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("one"), ca.issue_cert("other")
    mixed = clean_env / "mixed.pem"
    mixed.write_bytes(other.private_key_pem.bytes() + one.cert_chain_pems[0].bytes())
    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", TENANT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT)
    with pytest.raises(ConfigError, match="the private key does not match the certificate"):
        load_settings(directory_certificate_path=str(mixed))


def test_the_daemons_options_keep_a_credential_valid(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd run --http-port N` rebuilds the settings: the fixed token's default must not come back
    as a choice beside the credential."""
    from syncd.commands.run_cmd import with_overrides

    monkeypatch.setenv("SYNCD_DIRECTORY_TENANT_ID", TENANT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_ID", CLIENT)
    monkeypatch.setenv("SYNCD_DIRECTORY_CLIENT_SECRET", SECRET)
    s = with_overrides(load_settings(), {"http_port": 9999, "admin_token": None})
    assert s.http_port == 9999 and s.credential_kind == "client-secret"
    assert s.directory_url == "https://graph.microsoft.com/v1.0"
