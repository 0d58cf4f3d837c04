"""Settings precedence: command line > SYNCD_* variables > syncd.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.settings import load_settings


def test_defaults_are_the_embedded_ones(clean_env: Path) -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./syncd.db"
    assert s.is_embedded_directory
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)


def test_precedence_cli_over_env_over_toml_over_default(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("syncd.toml").write_text('batch_size = 111\nlog_level = "warning"\ndelta_interval_seconds = 30\n')
    s = load_settings()
    assert (s.batch_size, s.log_level, s.delta_interval_seconds) == (111, "warning", 30)
    monkeypatch.setenv("SYNCD_BATCH_SIZE", "222")
    monkeypatch.setenv("SYNCD_LOG_LEVEL", "ERROR")
    s = load_settings()
    assert (s.batch_size, s.log_level, s.delta_interval_seconds) == (222, "error", 30)
    s = load_settings(batch_size=333)
    assert (s.batch_size, s.log_level) == (333, "error")


def test_explicit_config_file(clean_env: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "other.toml"
    cfg.write_text("http_port = 9999\n")
    assert load_settings(str(cfg)).http_port == 9999
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings(str(tmp_path / "missing.toml"))


def test_postgres_url_gets_psycopg3_driver(clean_env: Path) -> None:
    s = load_settings(database_url="postgresql://postgres@127.0.0.1:5432/test")
    assert s.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize("url", ["foo://bar", "not a url", "mysql://root@localhost/db"])
def test_bad_database_url_names_it(clean_env: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="URL"):
        load_settings(database_url=url)


def test_bad_values_name_the_setting(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DELTA_INTERVAL_SECONDS", "2")
    with pytest.raises(ConfigError, match="delta_interval_seconds=.*'2'"):
        load_settings()


def test_secrets_are_masked(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_ADMIN_TOKEN", "s3cret-value")
    s = load_settings(database_url="postgresql://u:pw123@127.0.0.1/db")
    shown = str(s.masked())
    assert "s3cret-value" not in shown and "pw123" not in shown
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "s3cret-value"


def test_mass_disable_ratio_floor_setting(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.mass_disable_count, s.mass_disable_ratio, s.mass_disable_ratio_min_count) == (500, 0.10, 10)
    assert s.masked()["mass_disable_ratio_min_count"] == 10  # `syncd config show` lists it
    monkeypatch.setenv("SYNCD_MASS_DISABLE_RATIO_MIN_COUNT", "25")
    assert load_settings().mass_disable_ratio_min_count == 25
    monkeypatch.setenv("SYNCD_MASS_DISABLE_RATIO_MIN_COUNT", "0")  # at least 1: a floor of 1 is no floor
    with pytest.raises(ConfigError, match="mass_disable_ratio_min_count=.*'0'"):
        load_settings()


def test_a_malformed_toml_file_is_a_one_line_error(clean_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("full_run_deadline_seconds = [\n")
    with pytest.raises(ConfigError, match=r"config file '.*bad\.toml' is not valid TOML: "):
        load_settings(str(bad))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("delta_interval_seconds", 86_401),
        ("full_interval_seconds", 2_592_001),
        ("quarantine_max_backoff_seconds", 999_999_999_999),
        ("delta_run_deadline_seconds", 9),
        ("full_run_deadline_seconds", 604_801),
    ],
)
def test_time_settings_have_bounds(clean_env: Path, name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"invalid setting {name}={value}"):
        load_settings(**{name: value})
