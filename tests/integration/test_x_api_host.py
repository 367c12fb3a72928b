"""The X credentials only go to X, unless another host is allowed explicitly: then every run says
so. The real handler, the X sandbox on this machine (another host) and moto."""

from __future__ import annotations

import json

import pytest

from courtesy.errors import ConfigurationError
from tests.integration.conftest import digest_event
from tools.local_aws import LOCAL_NAMES


def warnings_naming(lines: list[dict], host: str) -> list[dict]:
    return [line for line in lines if line.get("level") == "WARNING" and line.get("x_api_host") == host]


def test_every_run_against_another_host_warns_and_names_it(stack, log_lines):
    stack.run()  # the local tooling allows the sandbox explicitly (tools.local_run)
    stack.x.add_followers(1, prefix="fan")
    stack.run(WELCOME_MODE="digest")
    stack.run(digest_event(stack), WELCOME_MODE="digest")
    warned = warnings_naming(log_lines(), stack.x.base_url)
    assert len(warned) == 3, "one warning per run, scheduled and digest"
    assert {w["correlation_id"] for w in warned} == {"2026-11-26T02:30:00Z", "2026-11-26T02:45:00Z", "digest/2026-11-26T02:45:01Z"}


def test_without_the_opt_in_the_run_fails_before_any_credential_leaves(stack, capfd):
    with pytest.raises(ConfigurationError) as problem:
        stack.run(X_API_ALLOW_OTHER_HOST="false")
    assert "X_API_ALLOW_OTHER_HOST" in str(problem.value) and stack.x.base_url in str(problem.value)
    assert stack.x.requests == [], "a request reached the other host"
    out = capfd.readouterr().out
    assert '"Reason":"ConfigurationError"' in out.replace(" ", "")  # PersonNeeded: the alarm asks a person
    for value in stack.x.credentials.values():
        assert value not in out + str(problem.value)


def test_oauth2_tokens_with_the_oauth1_role_stop_before_the_refresh_token_is_spent(stack):
    secret = stack.x.issue_oauth2_tokens()
    stack.aws.client("secretsmanager").put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps(secret))
    with pytest.raises(ConfigurationError, match="XAuthType=oauth2"):
        stack.run(X_AUTH_TYPE="oauth1")
    assert stack.x.token_calls() == {} and stack.x.requests == []
    assert stack.run(X_AUTH_TYPE="oauth2")["baseline"]  # as deployed with XAuthType=oauth2
