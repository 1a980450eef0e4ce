"""The storage transport reads proxy settings from the environment as requests does, but once per host."""
from __future__ import annotations

import pytest
import requests

from shared_code.storage.clients import _EnvironmentOnceSession

URLS = ["https://acct.blob.core.windows.net/c/b?comp=snapshot", "https://acct.queue.core.windows.net/q/messages",
        "http://127.0.0.1:10000/source/c", "https://login.microsoftonline.com/t/oauth2/v2.0/token"]


@pytest.mark.parametrize("url", URLS)
def test_same_proxies_and_verify_as_requests(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.queue.core.windows.net")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    expected = requests.Session().merge_environment_settings(url, {}, None, True, None)
    assert _EnvironmentOnceSession().merge_environment_settings(url, {}, None, True, None) == expected


def test_the_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://first:3128")
    session = _EnvironmentOnceSession()
    first = session.merge_environment_settings(URLS[0], {}, None, True, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://second:3128")
    again = session.merge_environment_settings(URLS[0], {}, None, True, None)
    other_host = session.merge_environment_settings(URLS[1], {}, None, True, None)
    assert first["proxies"]["https"] == again["proxies"]["https"] == "http://first:3128"
    assert other_host["proxies"]["https"] == "http://second:3128"
    again["proxies"]["https"] = "mutated by a caller"
    assert session.merge_environment_settings(URLS[0], {}, None, True, None)["proxies"]["https"] == "http://first:3128"


def test_explicit_proxies_bypass_the_cache() -> None:
    session = _EnvironmentOnceSession()
    explicit = {"https": "http://explicit:8080"}
    assert session.merge_environment_settings(URLS[0], explicit, None, True, None)["proxies"]["https"] == \
        "http://explicit:8080"
