"""Configuration is validated once, and every problem is named."""

from __future__ import annotations

import pytest

from courtesy.errors import ConfigurationError
from courtesy.settings import Settings

REQUIRED = {"LEDGER_TABLE_NAME": "l", "IDEMPOTENCY_TABLE_NAME": "i", "X_CREDENTIALS_SECRET_ID": "s"}


def test_defaults_are_a_dry_run_against_x_with_conservative_caps():
    settings = Settings.from_env(REQUIRED)
    assert settings.dry_run is True
    assert (settings.max_welcomes_per_run, settings.daily_welcome_limit) == (15, 1000)  # X's window; room for people
    assert settings.x_api_base_url == "https://api.twitter.com" and settings.baseline_mode == "newest-page"


@pytest.mark.parametrize("value, dry", [("false", False), ("FALSE", False), ("true", True), ("", True)])
def test_only_an_explicit_false_goes_live(value, dry):
    assert Settings.from_env({**REQUIRED, "DRY_RUN": value}).dry_run is dry


def test_every_problem_is_named_at_once():
    env = {
        "DRY_RUN": "maybe",
        "MAX_WELCOMES_PER_RUN": "lots",
        "DAILY_WELCOME_LIMIT": "5000",
        "BASELINE_MODE": "all",
        "X_API_BASE_URL": "ftp://x",
    }
    with pytest.raises(ConfigurationError) as problem:
        Settings.from_env(env)
    message = str(problem.value)
    for name in (
        "LEDGER_TABLE_NAME",
        "IDEMPOTENCY_TABLE_NAME",
        "X_CREDENTIALS_SECRET_ID",
        "DRY_RUN",
        "MAX_WELCOMES_PER_RUN",
        "DAILY_WELCOME_LIMIT",
        "BASELINE_MODE",
        "X_API_BASE_URL",
    ):
        assert name in message


# --- The X credentials only go to X (or, when allowed explicitly, to another host) ---------------


@pytest.mark.parametrize("url", ["https://api.twitter.com", "https://api.x.com/", "https://API.X.com", "https://api.twitter.com/2-prefix"])
def test_x_own_hosts_need_no_opt_in(url):
    settings = Settings.from_env({**REQUIRED, "X_API_BASE_URL": url})
    assert settings.x_api_other_host is False and settings.x_api_allow_other_host is False
    assert settings.x_api_origin == url.rstrip("/").lower().split("/2-prefix")[0]


@pytest.mark.parametrize(
    "url",
    [
        "https://playground.example.com",
        "http://127.0.0.1:8765",
        "http://localhost:8765",
        "http://[::1]:8765",
        "https://api.x.com.evil.example",
    ],
)
def test_another_host_is_refused_without_the_opt_in_and_the_message_names_it(url):
    with pytest.raises(ConfigurationError) as problem:
        Settings.from_env({**REQUIRED, "X_API_BASE_URL": url})
    message = str(problem.value)
    assert "X_API_ALLOW_OTHER_HOST" in message and "XApiAllowOtherHost" in message
    assert url.split("://")[1].split("/")[0].split(":8765")[0].strip("[]") in message


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://playground.example.com/base", "https://playground.example.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://127.45.6.7:9", "http://127.45.6.7:9"),
        ("http://localhost:8765/", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_another_host_is_accepted_with_the_opt_in(url, origin):
    settings = Settings.from_env({**REQUIRED, "X_API_BASE_URL": url, "X_API_ALLOW_OTHER_HOST": "true"})
    assert settings.x_api_other_host is True and settings.x_api_origin == origin


@pytest.mark.parametrize(
    "url",
    [
        "http://api.twitter.com",  # X's host, but the credentials would cross the network in clear
        "http://10.0.0.5:8765",
        "http://192.168.1.20",
        "http://host.docker.internal:8765",
        "http://127.0.0.1.nip.io:8765",  # a name that resolves to loopback is still a name
        "http://localhost.example.com",
    ],
)
def test_plain_http_is_refused_off_this_machine_even_with_the_opt_in(url):
    with pytest.raises(ConfigurationError) as problem:
        Settings.from_env({**REQUIRED, "X_API_BASE_URL": url, "X_API_ALLOW_OTHER_HOST": "true"})
    assert "plain http" in str(problem.value)


def test_a_base_url_carrying_a_password_is_refused_without_printing_it():
    with pytest.raises(ConfigurationError) as problem:
        Settings.from_env({**REQUIRED, "X_API_BASE_URL": "https://user:s3cr3t-pw@api.x.com", "X_API_ALLOW_OTHER_HOST": "true"})
    assert "user name or password" in str(problem.value) and "s3cr3t-pw" not in str(problem.value)
    for url in ("https://api.x.com/?token=abc123", "https://api.x.com:99999", "https://"):
        with pytest.raises(ConfigurationError) as problem:
            Settings.from_env({**REQUIRED, "X_API_BASE_URL": url})
        assert "abc123" not in str(problem.value)


def test_the_opt_in_and_the_auth_type_are_validated():
    env = {**REQUIRED, "X_API_ALLOW_OTHER_HOST": "yes please", "X_AUTH_TYPE": "oauth3"}
    with pytest.raises(ConfigurationError) as problem:
        Settings.from_env(env)
    assert "X_API_ALLOW_OTHER_HOST must be 'true' or 'false'" in str(problem.value) and "X_AUTH_TYPE" in str(problem.value)
    assert Settings.from_env({**REQUIRED, "X_AUTH_TYPE": "OAuth2"}).x_auth_type == "oauth2"
    assert Settings.from_env(REQUIRED).x_auth_type == ""
