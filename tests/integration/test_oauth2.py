"""OAuth 2.0 user-context credentials, end to end: the real handler, tweepy with a bearer token
over HTTP to the sandbox (which issues, expires and rotates the tokens as X does), the secret
and the refresh lease in moto.

The one window no client can close: X has answered a refresh (so the old refresh token is
spent) and the process dies before the new tokens are stored. The tests below pin what can
be pinned around it: the tokens are stored before anything uses them, a refresh that never
answered is told apart from one that was refused, and the refused one asks for a person."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from courtesy import app, x_auth
from courtesy.errors import CredentialsRejected
from courtesy.ledger import OAUTH_REFRESH_KEY
from courtesy.settings import Settings
from courtesy.x_account import XAccount, refresh_oauth2_tokens, validate_oauth2_credentials
from sandbox.x_sandbox import ACCESS_TOKEN_SECONDS
from tools.local_aws import LOCAL_NAMES

SECRET_ID = LOCAL_NAMES["XCredentialsSecret"]


def stored(stack) -> dict[str, Any]:
    return json.loads(stack.aws.client("secretsmanager").get_secret_value(SecretId=SECRET_ID)["SecretString"])


def store(stack, value: dict[str, Any]) -> None:
    stack.aws.client("secretsmanager").put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(value))


CLIENTS = ["sandbox-oauth2-confidential", "sandbox-oauth2-public"]


@pytest.fixture
def oauth2_stack(request, stack):
    """The stack with its secret holding OAuth 2.0 tokens the sandbox issued (the consent step):
    a confidential client's, or the client a test names with indirect parametrization."""
    store(stack, stack.x.issue_oauth2_tokens(getattr(request, "param", CLIENTS[0])))
    return stack


def bearer_requests(x) -> list[dict]:
    return [r for r in x.requests if r["path"] != "/2/oauth2/token"]


@pytest.mark.parametrize("oauth2_stack", CLIENTS, indirect=True)
def test_runs_work_with_a_bearer_token_and_refresh_nothing_while_it_is_fresh(oauth2_stack):
    stack = oauth2_stack
    before = stored(stack)
    assert stack.run()["baseline"]
    fans = stack.x.add_followers(2, prefix="new")
    assert stack.run()["welcomed"] == 2
    assert sorted(stack.welcomes_per_follower()) == sorted(f["id"] for f in fans)
    assert stack.x.token_calls() == {} and stored(stack) == before


@pytest.mark.parametrize("oauth2_stack", CLIENTS, indirect=True)
def test_after_two_hours_the_next_run_refreshes_once_and_stores_the_rotated_token_first(oauth2_stack, monkeypatch):
    stack = oauth2_stack
    old = stored(stack)
    stack.run()
    stack.x.advance(ACCESS_TOKEN_SECONDS)  # the access token has expired on the sandbox clock
    [fan] = stack.x.add_followers(1, prefix="new")

    # Every request that presents a bearer token checks the secret already holds that token.
    secrets = boto3.client("secretsmanager", endpoint_url=stack.aws.endpoint, region_name="us-east-1", **_keys())
    presented: list[tuple[str, bool]] = []
    authenticate = stack.x._authenticate

    def checking(method, path, raw_query, headers, body):
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        in_secret = json.loads(secrets.get_secret_value(SecretId=SECRET_ID)["SecretString"])["access_token"] == token
        presented.append((token, in_secret))
        return authenticate(method, path, raw_query, headers, body)

    monkeypatch.setattr(stack.x, "_authenticate", checking)
    summary = stack.run()
    assert summary["welcomed"] == 1 and stack.welcomes_per_follower() == {fan["id"]: 1}

    new = stored(stack)
    assert stack.x.token_calls() == {old["refresh_token"]: 1}, "one refresh, one token-endpoint call"
    assert new["refresh_token"] != old["refresh_token"] and new["access_token"] != old["access_token"]
    assert new["expires_at"] == pytest.approx(stack.x.now() + ACCESS_TOKEN_SECONDS, abs=5)
    assert {k: v for k, v in new.items() if k not in ("access_token", "refresh_token", "expires_at")} == {
        k: v for k, v in old.items() if k not in ("access_token", "refresh_token", "expires_at")
    }
    assert presented and all(in_secret for _, in_secret in presented), "a new token was used before it was stored"
    assert {token for token, _ in presented} == {new["access_token"]}, "the expired token was never presented"

    # The spent refresh token is refused by X if anyone tries it again; the stored one works.
    with pytest.raises(CredentialsRejected, match="Re-authorize"):
        refresh_oauth2_tokens(validate_oauth2_credentials(old), base_url=stack.x.base_url, now=stack.x.now())
    assert stack.x.refresh_token_live(new["refresh_token"])

    monkeypatch.undo()
    stack.run()  # still fresh: nothing more is spent
    assert stack.x.token_calls() == {old["refresh_token"]: 2}  # the first, and this test's deliberate reuse
    assert stored(stack) == new


def test_a_token_with_less_than_five_minutes_left_is_refreshed_before_the_run_uses_it(oauth2_stack):
    stack = oauth2_stack
    old = stored(stack)
    stack.x.advance(ACCESS_TOKEN_SECONDS - 4 * 60)
    stack.run()
    assert stack.x.token_calls() == {old["refresh_token"]: 1} and stored(stack)["refresh_token"] != old["refresh_token"]


@pytest.mark.parametrize("runs", [2, 5])
def test_concurrent_refreshers_spend_the_refresh_token_exactly_once_and_all_get_a_working_token(stack, runs):
    secret = stack.x.issue_oauth2_tokens()
    store(stack, secret)
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    stack.x.latency_seconds = 0.3  # the refresh takes a while, so the others meet the lease
    start = threading.Barrier(runs)
    results: list[Any] = [None] * runs

    with stack.function.environment() as app:
        settings = Settings.from_env()

        def refresher(i: int) -> None:
            dynamodb = boto3.client("dynamodb")  # each run has its own clients, as separate containers do
            start.wait()
            try:
                results[i] = app.x_credentials(settings, dynamodb)
            except Exception as exc:  # noqa: BLE001 - reported below
                results[i] = exc

        threads = [threading.Thread(target=refresher, args=(i,)) for i in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
    stack.x.latency_seconds = 0.0

    assert not [r for r in results if isinstance(r, Exception)], results
    assert stack.x.token_calls() == {secret["refresh_token"]: 1}, "the refresh token was spent more than once"
    new = stored(stack)
    assert {r["access_token"] for r in results} == {new["access_token"]}
    for creds in results:
        account = XAccount(creds, base_url=stack.x.base_url)
        assert account.account_id() == stack.x.account_id
        account.close()
    lease = stack.ledger_items()[OAUTH_REFRESH_KEY]
    assert float(lease["lease_until"]) == 0, "the lease was let go"


def test_a_live_lease_held_elsewhere_ends_the_run_without_spending_anything(oauth2_stack, monkeypatch):
    stack = oauth2_stack
    old = stored(stack)
    stack.run()
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    stack.aws.client("dynamodb").put_item(
        TableName=LOCAL_NAMES["LedgerTable"],
        Item={"follower_id": {"S": OAUTH_REFRESH_KEY}, "holder": {"S": "another"}, "lease_until": {"N": str(stack.x.now() + 60)}},
    )
    monkeypatch.setattr(x_auth, "WAIT_SECONDS", 0.3)
    monkeypatch.setattr(x_auth, "POLL_SECONDS", 0.1)
    skipped = stack.run()  # an ordinary condition: the slot does nothing, no alarm
    assert skipped["skipped_run"] is True and "spent nothing" in skipped["reason"]
    assert stack.x.token_calls() == {} and stored(stack) == old
    stack.x.advance(61)  # its holder died: the lease lapses and the next run refreshes
    stack.run()
    assert stack.x.token_calls() == {old["refresh_token"]: 1}


def test_a_refused_refresh_fails_the_run_for_a_person_and_loses_nothing(oauth2_stack, log_lines):
    stack = oauth2_stack
    stack.run()
    [fan] = stack.x.add_followers(1, prefix="new")
    stack.run(DRY_RUN="true")  # queued
    spent = stored(stack)
    refresh_oauth2_tokens(validate_oauth2_credentials(spent), base_url=stack.x.base_url, now=stack.x.now())  # spent elsewhere
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    with pytest.raises(CredentialsRejected, match="Re-authorize the app"):
        stack.run()
    assert any(line.get("reason") == "CredentialsRejected" for line in log_lines())
    assert stack.state_of(fan["id"]) == "pending" and stack.x.dm_log == [] and stored(stack) == spent
    assert float(stack.ledger_items()[OAUTH_REFRESH_KEY]["lease_until"]) == 0


def test_a_refresh_whose_answer_never_came_is_the_one_window_a_person_must_close(oauth2_stack):
    """X took the refresh (the old token is spent) but the answer was lost: nothing can recover
    the new tokens. The run fails as X being unreachable; the next one is refused and asks for
    a person, and nothing was sent with a token the secret does not hold."""
    stack = oauth2_stack
    stack.run()
    old = stored(stack)
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    stack.x.drop_token_answer_next()
    lost = stack.run()
    assert lost["skipped_run"] is True and "if X took it" in lost["reason"]
    assert stored(stack) == old and not stack.x.refresh_token_live(old["refresh_token"])
    with pytest.raises(CredentialsRejected, match="Re-authorize"):
        stack.run()


def test_a_failed_secret_write_after_x_answered_uses_nothing_and_asks_for_a_person(oauth2_stack, monkeypatch):
    stack = oauth2_stack
    stack.run()
    stack.x.add_followers(1, prefix="new")
    old = stored(stack)
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    stack.x.reset_counters()

    def refuse(secret_id, value):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "PutSecretValue")

    monkeypatch.setattr(app, "_store_secret", refuse)
    with pytest.raises(CredentialsRejected, match=r"writing them to the secret failed \(AccessDeniedException\)"):
        stack.run()
    assert bearer_requests(stack.x) == [], "the unstored access token was used"
    assert stack.x.dm_log == [] and stored(stack) == old


def test_an_x_unreachable_refresh_spends_nothing_and_the_next_run_refreshes(oauth2_stack):
    stack = oauth2_stack
    stack.run()
    old = stored(stack)
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    stack.x.fail_next_token_request(503)
    down = stack.run()
    assert down["skipped_run"] is True and "503" in down["reason"]
    assert stored(stack) == old and stack.x.refresh_token_live(old["refresh_token"])
    stack.run()
    assert stored(stack)["refresh_token"] != old["refresh_token"]


def test_a_refresh_answer_without_expires_in_is_stored_for_two_hours_not_lost(oauth2_stack, monkeypatch):
    """X spends the old refresh token whatever its answer looks like: tokens without a lifetime
    are stored with X's documented two hours, and the run goes on with them."""
    stack = oauth2_stack
    stack.run()
    old = stored(stack)
    stack.x.advance(ACCESS_TOKEN_SECONDS)
    [fan] = stack.x.add_followers(1, prefix="new")
    issue = stack.x._issue

    def without_lifetime(client_id):
        answer = issue(client_id)
        answer.pop("expires_in")
        return answer

    monkeypatch.setattr(stack.x, "_issue", without_lifetime)
    assert stack.run()["welcomed"] == 1 and stack.welcomes_per_follower() == {fan["id"]: 1}
    new = stored(stack)
    assert new["refresh_token"] != old["refresh_token"] and stack.x.refresh_token_live(new["refresh_token"])
    assert new["expires_at"] == pytest.approx(stack.x.now() + 2 * 60 * 60, abs=5)


def test_oauth1_credentials_still_work_beside_it(stack):
    assert stack.run()["baseline"]
    stack.x.add_followers(1, prefix="new")
    assert stack.run()["welcomed"] == 1 and stack.x.token_calls() == {}


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
