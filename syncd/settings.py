"""One typed settings object: SYNCD_* variables, an optional syncd.toml, then defaults.

Precedence, highest first: command-line options, environment variables, the TOML file
(`--config PATH`, `SYNCD_CONFIG`, or `./syncd.toml` when present), built-in defaults.
Nothing here runs at import time: `load_settings()` is called from the CLI's entry point.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.directory.clouds import CLOUDS
from syncd.directory.ids import is_object_id, normalize_object_id
from syncd.errors import ConfigError

EMBEDDED = "embedded"
DEFAULT_DATABASE_URL = "sqlite:///./syncd.db"
#: Consecutive failed runs that put an environment in quarantine (see syncd.service.quarantine).
DEFAULT_QUARANTINE_AFTER_FAILURES = 3
#: The longest wait between scheduled runs of a quarantined environment: once a day, as Entra's
#: provisioning service ends up running the incremental cycles of a job in quarantine.
DEFAULT_QUARANTINE_MAX_BACKOFF_SECONDS = 86400


def normalise_database_url(url: str) -> str:
    """Check a database URL and pick the driver syncd uses (psycopg 3 for PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"malformed database URL {url!r}: expected e.g. sqlite:///./syncd.db or "
            "postgresql://user@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(f"unsupported database {backend!r} in URL {url!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCD_", extra="forbid", validate_default=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the Dataverse database")
    directory_url: str = Field(
        EMBEDDED, description="Graph v1.0 base URL, or 'embedded' for the built-in fake tenant"
    )
    directory_store: str = Field("./syncd-tenant.db", description="file of the embedded fake tenant")
    directory_token: SecretStr = Field(
        SecretStr("syncd-fake-token"), description="fixed bearer token for Graph (the fake, tests)"
    )
    directory_tenant_id: str | None = Field(None, description="Entra tenant id (a GUID) or a verified domain")
    directory_client_id: str | None = Field(
        None, description="application (client) id of syncd's app registration"
    )
    directory_client_secret: SecretStr | None = Field(
        None, description="client secret of the app registration"
    )
    directory_certificate_path: str | None = Field(
        None, description="certificate of the app registration: PEM (key and certificate) or PKCS#12"
    )
    directory_certificate_password: SecretStr | None = Field(None, description="password of the certificate")
    directory_credential: Literal["managed-identity", "workload-identity", "azure-cli", "default"] | None = (
        Field(None, description="an azure-identity credential instead of a secret or certificate")
    )
    directory_authority: str = Field(
        "public",
        description="Entra cloud: public, usgov, usgov-dod, china, or an https:// authority URL",
    )
    directory_ca_bundle: str | None = Field(None, description="PEM of extra certificate authorities to trust")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json"] = "auto"
    delta_interval_seconds: int = Field(60, ge=5, le=86_400, description="seconds between delta runs")
    full_interval_seconds: int = Field(86400, ge=60, le=2_592_000, description="seconds between full runs")
    batch_size: int = Field(5000, ge=1, le=100_000, description="rows per write transaction")
    delta_run_deadline_seconds: int = Field(
        600, ge=10, le=86_400, description="a delta run still going after this long ends as failed"
    )
    full_run_deadline_seconds: int = Field(
        7200, ge=60, le=604_800, description="a full run still going after this long ends as failed"
    )
    mass_disable_count: int = Field(500, ge=0, description="a run disabling more users than this is blocked")
    mass_disable_ratio: float = Field(
        0.10, ge=0, le=1, description="...or more than this share of the enabled users"
    )
    mass_disable_ratio_min_count: int = Field(
        10, ge=1, description="...the share applying only to a run disabling at least this many users"
    )
    allow_mass_disable: bool = Field(False, description="let runs over the mass-disable threshold through")
    quarantine_after_failures: int = Field(
        DEFAULT_QUARANTINE_AFTER_FAILURES,
        ge=0,
        le=100,
        description="consecutive failed runs that put an environment in quarantine (0: never)",
    )
    quarantine_max_backoff_seconds: int = Field(
        DEFAULT_QUARANTINE_MAX_BACKOFF_SECONDS,
        ge=5,
        le=2_592_000,
        description="longest wait between scheduled runs of a quarantined environment",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    admin_token: SecretStr | None = Field(None, description="bearer token for the admin API's mutations")
    dataverse_api: bool = Field(
        False,
        description="serve each environment's Dataverse Web API at /<environment>/api/data/v9.2/ on the "
        "daemon's HTTP endpoint",
    )
    dataverse_api_url: str | None = Field(
        None,
        description="the base URL clients reach the Web API at, shown by `syncd env show` "
        "(default http://<http_host>:<http_port>)",
    )
    _credential_kind: str | None = PrivateAttr(None)

    @field_validator("directory_url", mode="before")
    @classmethod
    def _unset_url(cls, v: Any) -> Any:
        """An empty directory URL is an unset one (a variable exported empty): see _directory_credential."""
        return "" if isinstance(v, str) and not v.strip() else v

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalise_database_url(v)

    @field_validator("dataverse_api_url")
    @classmethod
    def _check_api_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", v):
            raise ConfigError(
                f"invalid setting dataverse_api_url={v!r}: give the base URL clients use, such as "
                "https://syncd.example:8443 (each environment is a path segment below it)"
            )
        return v.rstrip("/") if v is not None else None

    @property
    def dataverse_api_base_url(self) -> str:
        """Where clients reach the Web API: `dataverse_api_url`, else the daemon's own endpoint."""
        if self.dataverse_api_url:
            return self.dataverse_api_url
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"

    @model_validator(mode="after")
    def _backoff_cap_not_below_the_interval(self) -> Settings:
        if self.quarantine_max_backoff_seconds < self.delta_interval_seconds:
            raise ConfigError(
                f"invalid setting quarantine_max_backoff_seconds={self.quarantine_max_backoff_seconds}: "
                f"below delta_interval_seconds={self.delta_interval_seconds}, so quarantine would slow "
                "nothing down; give at least the delta interval"
            )
        return self

    @model_validator(mode="after")
    def _directory_credential(self) -> Settings:
        kind = self._credential_kind = _credential_kind(self)
        url_given = bool(self.directory_url) and "directory_url" in self.model_fields_set
        self.directory_url = self.directory_url or EMBEDDED
        if self.directory_authority.lower() in CLOUDS:
            self.directory_authority = self.directory_authority.lower()
        elif not self.directory_authority.lower().startswith("https://"):
            raise ConfigError(
                f"invalid setting directory_authority={self.directory_authority!r}: give one of "
                f"{', '.join(CLOUDS)} or an https:// URL (an http:// authority is refused)"
            )
        else:
            _check_authority_url(self.directory_authority)
        if self.directory_ca_bundle is not None:
            _check_ca_bundle(self.directory_ca_bundle)
        if kind is None:
            return self
        if "directory_token" in self.model_fields_set:
            raise ConfigError(
                f"directory_token is set, and so is a {kind} credential: give one way to authenticate "
                "(the fixed token is for the fake tenant and tests)"
            )
        if self.directory_url == EMBEDDED:
            if url_given:
                raise ConfigError(
                    "invalid setting directory_url='embedded': the built-in fake tenant takes no credential; "
                    "give the Graph URL of the tenant, or drop the directory_client_* settings"
                )
            cloud = CLOUDS.get(self.directory_authority)
            if cloud is None:
                raise ConfigError(
                    f"directory_authority={self.directory_authority!r} is not one of Entra's clouds: "
                    "give its Graph base URL in directory_url"
                )
            self.directory_url = cloud.graph_v1
        if not self.directory_url.lower().startswith("https://"):
            raise ConfigError(
                f"invalid setting directory_url={self.directory_url!r}: with a credential, Graph must be "
                "reached over https:// (a token must not travel in clear)"
            )
        return self

    @property
    def credential_kind(self) -> str | None:
        """How syncd authenticates to Graph: a kind of ``syncd.directory.credentials.CREDENTIAL_KINDS``,
        or None for the fixed ``directory_token``."""
        return self._credential_kind

    @property
    def authority_url(self) -> str:
        """The sign-in authority as a URL (a cloud's name resolved)."""
        cloud = CLOUDS.get(self.directory_authority)
        return cloud.authority if cloud else self.directory_authority.rstrip("/")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _toml_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def is_embedded_directory(self) -> bool:
        return self.directory_url == EMBEDDED

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def masked(self) -> dict[str, Any]:
        """The effective settings, secrets and database passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif name == "database_url":
                value = make_url(value).render_as_string(hide_password=True)
            out[name] = value
        return out


_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", re.IGNORECASE
)


def _credential_kind(s: Settings) -> str | None:
    """The credential the settings describe; raises ConfigError for a contradictory or incomplete set."""
    secret = s.directory_client_secret is not None and bool(s.directory_client_secret.get_secret_value())
    cert = bool(s.directory_certificate_path)
    if s.directory_credential is not None:
        if secret or cert:
            given = "directory_client_secret" if secret else "directory_certificate_path"
            raise ConfigError(
                f"{given} is set, but directory_credential={s.directory_credential!r} does not use it: "
                "give one way to authenticate"
            )
        kind: str | None = s.directory_credential
    elif secret and cert:
        raise ConfigError(
            "both directory_client_secret and directory_certificate_path are set: give one way to authenticate"
        )
    else:
        kind = "client-secret" if secret else "certificate" if cert else None
    if s.directory_certificate_password is not None and not cert:
        raise ConfigError("directory_certificate_password is set without directory_certificate_path")
    if kind is None:
        if s.directory_tenant_id or s.directory_client_id:
            raise ConfigError(
                "directory_tenant_id/directory_client_id are set but no credential: give "
                "directory_client_secret, directory_certificate_path or directory_credential"
            )
        return None
    if kind in ("client-secret", "certificate"):
        for name in ("directory_tenant_id", "directory_client_id"):
            if not getattr(s, name):
                raise ConfigError(f"{name} is required with a {kind} credential")
    if s.directory_client_id is not None:
        try:
            s.directory_client_id = normalize_object_id(s.directory_client_id)
        except ValueError:
            raise ConfigError(
                f"invalid setting directory_client_id={s.directory_client_id!r}: an application (client) id is "
                "a GUID, as shown on the app registration's overview"
            ) from None
    tenant = s.directory_tenant_id
    if tenant is not None:
        if is_object_id(tenant):
            s.directory_tenant_id = normalize_object_id(tenant)
        elif _DOMAIN.match(tenant.strip()):
            s.directory_tenant_id = tenant.strip().lower()
        else:
            raise ConfigError(
                f"invalid setting directory_tenant_id={tenant!r}: give the directory (tenant) id, a GUID, "
                "or a verified domain such as contoso.onmicrosoft.com"
            )
    if kind == "certificate":
        from syncd.directory.credentials import check_certificate

        path = str(s.directory_certificate_path)
        password = s.directory_certificate_password
        try:
            check_certificate(path, password.get_secret_value() if password else None)
        except ValueError as exc:
            raise ConfigError(f"invalid setting directory_certificate_path={path!r}: {exc}") from None
    return kind


def _check_authority_url(url: str) -> None:
    """An authority URL is a scheme, a host and an optional port: no user, password, query or fragment."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
    ):
        shown = (
            url
            if parts is None or not (parts.username or parts.password)
            else "https://****@" + str(parts.hostname)
        )
        raise ConfigError(
            f"invalid setting directory_authority={shown!r}: give the sign-in host as https://HOST[:PORT], "
            "with no user, password, query or fragment"
        )
    if parts.path not in ("", "/"):
        raise ConfigError(
            f"invalid setting directory_authority={url!r}: give the sign-in host only (https://HOST[:PORT]); "
            "the tenant goes in directory_tenant_id"
        )


def _check_ca_bundle(path: str) -> None:
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ConfigError(f"invalid setting directory_ca_bundle={path!r}: no such file") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"invalid setting directory_ca_bundle={path!r}: not a PEM file of certificates ({exc})"
        ) from None


def _is_secret(field: str) -> bool:
    """A setting whose value is never shown, not even in an error about it (a SecretStr field)."""
    info = Settings.model_fields.get(field.split(".", 1)[0])
    return info is not None and "SecretStr" in str(info.annotation)


_config_override: Path | None = None


def _toml_path() -> Path | None:
    if _config_override is not None:
        return _config_override
    env = os.environ.get("SYNCD_CONFIG")
    if env:
        return Path(env)
    default = Path("syncd.toml")
    return default if default.is_file() else None


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Build the settings; `overrides` (command-line options) win over everything else."""
    global _config_override
    path = Path(config_file) if config_file else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    env_path = os.environ.get("SYNCD_CONFIG")
    if path is None and env_path and not Path(env_path).is_file():
        raise ConfigError(f"config file {env_path!r} (from SYNCD_CONFIG) does not exist")
    _config_override = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except tomllib.TOMLDecodeError as exc:
        shown = path or _toml_path()
        raise ConfigError(f"config file {str(shown)!r} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        if "ctx" in err and isinstance(err["ctx"].get("error"), ConfigError):
            raise err["ctx"]["error"] from None
        value = "********" if _is_secret(field) else repr(err.get("input"))
        raise ConfigError(f"invalid setting {field}={value}: {err['msg']}") from None
    finally:
        _config_override = None
