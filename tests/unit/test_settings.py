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
