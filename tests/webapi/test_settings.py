"""SYNCD_DATAVERSE_API and SYNCD_DATAVERSE_API_URL: off by default; the base URL clients use."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.settings import load_settings
from syncd.webapi.urls import env_segment, organization_url, web_api_url


def test_off_by_default_and_the_base_url_follows_the_http_endpoint(clean_env: Path) -> None:
    s = load_settings()
    assert s.dataverse_api is False
    assert s.dataverse_api_base_url == "http://127.0.0.1:8080"
    assert load_settings(http_host="::1", http_port=9000).dataverse_api_base_url == "http://[::1]:9000"


def test_the_base_url_can_be_given(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DATAVERSE_API", "true")
    monkeypatch.setenv("SYNCD_DATAVERSE_API_URL", "https://syncd.example:8443/")
    s = load_settings()
    assert s.dataverse_api is True
    assert s.dataverse_api_base_url == "https://syncd.example:8443"


@pytest.mark.parametrize("bad", ["syncd.example", "ftp://x", "https://", "https://h/p?q=1"])
def test_a_bad_base_url_is_refused(clean_env: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="dataverse_api_url"):
        load_settings(dataverse_api_url=bad)


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("prod", "prod"),
        ("a b", "a%20b"),
        ("a/b", "a%2Fb"),
        ("it's", "it%27s"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
    ],
)
def test_environment_segments(name: str, segment: str) -> None:
    assert env_segment(name) == segment
    assert organization_url("https://h:1/", name) == f"https://h:1/{segment}"
    assert web_api_url("https://h:1", name) == f"https://h:1/{segment}/api/data/v9.2/"
