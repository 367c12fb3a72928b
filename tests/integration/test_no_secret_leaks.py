"""No credential value ever reaches a log line, a metric, an exception or the run summary.

Known credential values go through every path we can produce (a good run, X's errors,
a rejected or incomplete or unreadable secret, DynamoDB failing) with every logger at
DEBUG, and everything the process printed or logged is searched for them."""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from sandbox import XSandbox
from tools.local_aws import LOCAL_NAMES

SECRETS = {
    "consumer_key": "ck-LEAKCHECK-7d1e",
    "consumer_secret": "cs-LEAKCHECK-93fa",
    "access_token": "1000-at-LEAKCHECK-5b2c",
    "access_token_secret": "ats-LEAKCHECK-c0de",
}


@pytest.fixture
def x():
    with XSandbox(credentials=dict(SECRETS)) as sandbox:
        sandbox.add_followers(30, prefix="early")
        yield sandbox


@pytest.fixture
def everything_logged(caplog, monkeypatch):
    # As an operator turning on DEBUG would: the root logger and the function's own.
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    return caplog


def put_secret(stack, value) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    stack.aws.client("secretsmanager").put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=text)


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


SCENARIOS = {
    "a good live run": lambda stack: None,
    "followers read refused (401)": lambda stack: stack.x.fail_next("followers", 401),
    "send refused (401)": lambda stack: stack.x.fail_next("send_dm", 401),
    "app without DM permission (403)": lambda stack: stack.x.fail_next(
        "send_dm", 403, body={"title": "Forbidden", "type": "https://api.twitter.com/2/problems/oauth1-permissions", "status": 403}
    ),
    "rate limited": lambda stack: stack.x.fail_next("send_dm", 429),
    "server error": lambda stack: stack.x.fail_next("send_dm", 500),
    "connection dropped": lambda stack: stack.x.drop_after_store_next(),
    "wrong secret": lambda stack: put_secret(stack, {**SECRETS, "access_token_secret": SECRETS["access_token_secret"] + "x"}),
    "incomplete secret": lambda stack: put_secret(stack, {k: v for k, v in SECRETS.items() if k != "consumer_secret"}),
    "placeholder secret": lambda stack: put_secret(stack, {**SECRETS, "consumer_key": "REPLACE_ME"}),
    "secret that is not JSON": lambda stack: put_secret(stack, "consumer_key=" + SECRETS["consumer_key"]),
    "secret not an object": lambda stack: put_secret(stack, list(SECRETS.values())),
    "bad template": lambda stack: stack.function.env.update(WELCOME_TEMPLATES='["' + SECRETS["consumer_secret"] + ' {oops}"]'),
}


def everything_one_run_says(stack, capfd, everything_logged, log_lines) -> str:
    """One run's answer or failure, stdout, stderr and every log record, as one text. What
    the test did to set the scene before is left out."""
    everything_logged.clear()
    capfd.readouterr()
    try:
        outputs = [json.dumps(stack.run())]
    except Exception as exc:  # the failure itself is fine; what it says is checked
        outputs = ["".join(traceback.format_exception(exc))]
    captured = capfd.readouterr()
    records = [r.getMessage() + json.dumps(getattr(r, "__dict__", {}), default=str) for r in everything_logged.records]
    return "\n".join([*outputs, captured.out, captured.err, *records, json.dumps(log_lines())])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_credential_value_appears_anywhere(stack, capfd, everything_logged, log_lines, scenario):
    stack.run()  # baseline
    stack.x.add_followers(3, prefix="new")
    SCENARIOS[scenario](stack)
    haystack = everything_one_run_says(stack, capfd, everything_logged, log_lines)
    if scenario == "bad template":
        # The template text is configuration, not a credential; only the secret's values count.
        haystack = haystack.replace(SECRETS["consumer_secret"], "<template text>")
    assert everything_logged.records, "nothing was logged: the check would be empty"
    assert leaks(haystack) == [], f"credential values leaked in {scenario}"


# --- OAuth 2.0 credentials: every token the sandbox ever issued, and the client secret ----------

OAUTH2_CLIENT = ("leakcheck-client", "ocs-LEAKCHECK-4e1f")


def spend_elsewhere(stack) -> None:
    """Someone else spends the stored refresh token: the next refresh is refused."""
    from courtesy.x_account import refresh_oauth2_tokens, validate_oauth2_credentials

    stored = json.loads(stack.aws.client("secretsmanager").get_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"])["SecretString"])
    refresh_oauth2_tokens(validate_oauth2_credentials(stored), base_url=stack.x.base_url, now=stack.x.now())
    stack.x.advance(2 * 60 * 60)


def without_refresh_token(stack) -> None:
    stored = json.loads(stack.aws.client("secretsmanager").get_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"])["SecretString"])
    put_secret(stack, {k: v for k, v in stored.items() if k != "refresh_token"})


OAUTH2_SCENARIOS = {
    "a run with a fresh bearer token": lambda stack: None,
    "a refresh": lambda stack: stack.x.advance(2 * 60 * 60),
    "a refused refresh": spend_elsewhere,
    "a refresh X could not answer": lambda stack: (stack.x.advance(2 * 60 * 60), stack.x.fail_next_token_request(503)),
    "a refresh whose answer was lost": lambda stack: (stack.x.advance(2 * 60 * 60), stack.x.drop_token_answer_next()),
    "a secret missing refresh_token": without_refresh_token,
    "an access token X rejects (401)": lambda stack: stack.x.fail_next("followers", 401),
}


@pytest.mark.parametrize("scenario", OAUTH2_SCENARIOS)
def test_no_oauth2_token_appears_anywhere(stack, capfd, everything_logged, log_lines, scenario):
    stack.x.oauth2_clients[OAUTH2_CLIENT[0]] = OAUTH2_CLIENT[1]
    put_secret(stack, stack.x.issue_oauth2_tokens(OAUTH2_CLIENT[0]))
    stack.run()  # baseline
    stack.x.add_followers(3, prefix="new")
    OAUTH2_SCENARIOS[scenario](stack)
    haystack = everything_one_run_says(stack, capfd, everything_logged, log_lines)
    issued = [*stack.x._access_tokens, *stack.x._refresh_tokens]
    assert len(issued) >= 2 and everything_logged.records
    assert [token for token in issued if token in haystack] == [], f"an OAuth 2.0 token leaked in {scenario}"
    assert OAUTH2_CLIENT[1] not in haystack, f"the client secret leaked in {scenario}"
