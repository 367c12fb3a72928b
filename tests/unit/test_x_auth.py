"""OAuth 2.0 credentials: their shape, when to refresh, the refresh lease, and X's token answers.

No network: the secret, the lease and X's token endpoint are fakes (the ledger's lease runs
against moto's in-process DynamoDB)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from courtesy import x_account
from courtesy.errors import CredentialsMissing, CredentialsRejected, TokenRefreshInProgress, UnexpectedAnswer, XUnavailable
from courtesy.ledger import OAUTH_REFRESH_KEY, Ledger
from courtesy.x_account import OAuth2Tokens, XAccount, is_oauth2, refresh_oauth2_tokens, validate_oauth2_credentials
from courtesy.x_auth import LEASE_SECONDS, REFRESH_MARGIN_SECONDS, LedgerLease, TokenKeeper
from tests.unit.conftest import LEDGER_TABLE, moto_ledger_table

NOW = 1_800_000_000.0
SECRET = {
    "client_id": "cid-VALUE-1",
    "client_secret": "csecret-VALUE-2",
    "access_token": "at-VALUE-3",
    "refresh_token": "rt-VALUE-4",
    "expires_at": int(NOW + 3600),
}
VALUES = [v for v in SECRET.values() if isinstance(v, str)]


# --- the secret's shape ------------------------------------------------------------------


def test_oauth2_secret_is_told_apart_from_oauth1():
    assert is_oauth2(SECRET)
    assert not is_oauth2({"consumer_key": "a", "consumer_secret": "b", "access_token": "c", "access_token_secret": "d"})
    assert not is_oauth2("not a dict")


def test_confidential_and_public_clients_are_both_valid():
    confidential = validate_oauth2_credentials(SECRET)
    assert confidential.client_secret == "csecret-VALUE-2" and confidential.expires_at == NOW + 3600
    public = validate_oauth2_credentials({k: v for k, v in SECRET.items() if k != "client_secret"})
    assert public.client_secret is None
    assert validate_oauth2_credentials({**SECRET, "client_secret": None}).client_secret is None
    assert validate_oauth2_credentials({**SECRET, "expires_at": str(NOW)}).expires_at == NOW  # a numeric string will do


@pytest.mark.parametrize(
    "secret, named",
    [
        ({k: v for k, v in SECRET.items() if k != "refresh_token"}, "missing refresh_token"),
        ({**SECRET, "access_token": " "}, "missing access_token"),
        ({k: v for k, v in SECRET.items() if k != "expires_at"}, "missing expires_at"),
        ({**SECRET, "expires_at": "soon"}, "missing expires_at"),
        ({**SECRET, "expires_at": float("nan")}, "missing expires_at"),
        ({**SECRET, "expires_at": True}, "missing expires_at"),
        ({**SECRET, "client_id": "REPLACE_ME"}, "still the placeholder: client_id"),
        ({**SECRET, "client_secret": 42}, "client_secret must be a string"),
    ],
)
def test_an_incomplete_secret_names_the_key_never_a_value(secret, named):
    with pytest.raises(CredentialsMissing) as caught:
        validate_oauth2_credentials(secret)
    assert named in str(caught.value)
    assert not [v for v in VALUES if v in str(caught.value)]


def test_tokens_never_show_in_their_repr():
    text = repr(validate_oauth2_credentials(SECRET)) + str(validate_oauth2_credentials(SECRET))
    assert not [v for v in VALUES if v in text]


def test_write_back_keeps_the_secrets_other_keys():
    tokens = validate_oauth2_credentials({**SECRET, "note": "kept"})
    assert tokens.as_secret() == {**SECRET, "note": "kept"}


def test_xaccount_uses_the_access_token_as_a_bearer_token_without_oauth1():
    account = XAccount(SECRET, base_url="http://127.0.0.1:9")
    assert account._client.bearer_token == "at-VALUE-3" and account._client.consumer_key is None
    assert account._user_auth is False
    account.close()


# --- the refresh decision and the protocol ------------------------------------------------


class Secret:
    """The credentials secret: what is stored, and every write."""

    def __init__(self, value: dict[str, Any], events: list[str]):
        self.value, self.events, self.writes = dict(value), events, []
        self.fail_writes = False

    def read(self) -> dict[str, Any]:
        self.events.append("read")
        return dict(self.value)

    def write(self, value: dict[str, Any]) -> None:
        self.events.append("write")
        if self.fail_writes:
            raise OSError("secret store down")
        self.writes.append(value)
        self.value = dict(value)


class FakeLease:
    def __init__(self, events: list[str], *, held_by_other: bool = False):
        self.events, self.held_by_other = events, held_by_other
        self.held = False
        self.takes = 0

    def take(self, now: float, seconds: float) -> bool:
        self.takes += 1
        if self.held_by_other:
            return False
        self.held = True
        self.events.append("lease")
        return True

    def release(self) -> None:
        self.held = False
        self.events.append("release")


class FakeTokenEndpoint:
    def __init__(self, events: list[str]):
        self.events, self.spent = events, []
        self.error: Exception | None = None
        self.n = 0

    def __call__(self, tokens: OAuth2Tokens) -> OAuth2Tokens:
        self.events.append("refresh")
        self.spent.append(tokens.refresh_token)
        if self.error:
            raise self.error
        self.n += 1
        return OAuth2Tokens(tokens.client_id, tokens.client_secret, f"at-new-{self.n}", f"rt-new-{self.n}", NOW + 7200, tokens.extra)


def keeper(secret_value=SECRET, *, held_by_other=False, on_sleep=None):
    events: list[str] = []
    secret, lease, endpoint = Secret(secret_value, events), FakeLease(events, held_by_other=held_by_other), FakeTokenEndpoint(events)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        events.append("sleep")
        if on_sleep:
            on_sleep(secret, len(sleeps))

    k = TokenKeeper(read=secret.read, write=secret.write, refresh=endpoint, lease=lease, now=lambda: NOW, sleep=sleep)
    return k, secret, lease, endpoint, events, sleeps


def expiring_in(seconds: float) -> dict[str, Any]:
    return {**SECRET, "expires_at": int(NOW + seconds)}


def test_a_token_with_more_than_five_minutes_left_is_used_as_is():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(REFRESH_MARGIN_SECONDS + 1))
    assert k.fresh().access_token == "at-VALUE-3"
    assert events == ["read"] and lease.takes == 0 and not k.refreshed


@pytest.mark.parametrize("left", [REFRESH_MARGIN_SECONDS, 60, 0, -3600])
def test_a_token_expiring_within_five_minutes_is_refreshed_once_and_stored_before_use(left):
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(left))
    tokens = k.fresh()
    assert tokens.access_token == "at-new-1" and k.refreshed
    assert endpoint.spent == ["rt-VALUE-4"]
    # Read, lease, read again under the lease, spend, store, and only then let go and hand out.
    assert events == ["read", "lease", "read", "refresh", "write", "release"]
    assert secret.value == {**SECRET, "access_token": "at-new-1", "refresh_token": "rt-new-1", "expires_at": int(NOW + 7200)}
    assert not lease.held


def test_tokens_another_run_refreshed_before_the_lease_are_used_not_refreshed_again():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))
    original_take = lease.take

    def take(now, seconds):  # someone else refreshed between our first read and our lease
        secret.value = {**SECRET, "access_token": "at-theirs", "refresh_token": "rt-theirs", "expires_at": int(NOW + 7200)}
        return original_take(now, seconds)

    lease.take = take  # type: ignore[method-assign]
    assert k.fresh().access_token == "at-theirs"
    assert endpoint.spent == [] and secret.writes == [] and not lease.held


def test_while_another_holds_the_lease_the_run_waits_for_its_tokens():
    def theirs_arrive(secret, sleeps):
        if sleeps == 3:
            secret.value = {**SECRET, "access_token": "at-theirs", "refresh_token": "rt-theirs", "expires_at": int(NOW + 7200)}

    k, secret, lease, endpoint, events, sleeps = keeper(expiring_in(10), held_by_other=True, on_sleep=theirs_arrive)
    assert k.fresh().access_token == "at-theirs"
    assert endpoint.spent == [] and secret.writes == [] and len(sleeps) == 3


def test_a_lease_never_freed_ends_the_run_after_a_few_seconds_without_spending_anything():
    k, secret, lease, endpoint, events, sleeps = keeper(expiring_in(10), held_by_other=True)
    with pytest.raises(TokenRefreshInProgress) as caught:
        k.fresh()
    assert endpoint.spent == [] and secret.writes == []
    assert 0 < sum(sleeps) <= 10, "bounded: a few seconds, not the lease's length"
    assert str(LEASE_SECONDS) in str(caught.value)


def test_a_refused_refresh_asks_a_person_to_reauthorize_and_stores_nothing():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))
    endpoint.error = CredentialsRejected("X refused the OAuth 2.0 refresh token (400 invalid_grant): re-authorize")
    with pytest.raises(CredentialsRejected, match="re-authorize"):
        k.fresh()
    assert secret.writes == [] and not lease.held and secret.value == expiring_in(10)


def test_a_refusal_because_a_lapsed_holder_spent_the_token_uses_what_it_stored():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))

    def refused(tokens):
        # The other holder's refresh went through first, and it stored its answer.
        secret.value = {**SECRET, "access_token": "at-theirs", "refresh_token": "rt-theirs", "expires_at": int(NOW + 7200)}
        raise CredentialsRejected("X refused the OAuth 2.0 refresh token (400 invalid_grant)")

    k._refresh = refused
    assert k.fresh().access_token == "at-theirs"
    assert secret.writes == [] and not lease.held


def test_x_unreachable_for_the_refresh_stores_nothing_and_lets_go_of_the_lease():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))
    endpoint.error = XUnavailable("Could not connect to X to refresh the OAuth 2.0 token; nothing was spent")
    with pytest.raises(XUnavailable):
        k.fresh()
    assert secret.writes == [] and not lease.held


def test_a_failed_write_after_x_answered_fails_the_run_for_a_person_without_any_value():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))
    secret.fail_writes = True
    with pytest.raises(CredentialsRejected) as caught:
        k.fresh()
    message = str(caught.value)
    assert "Re-authorize" in message and "OSError" in message
    assert "at-new-1" not in message and "rt-new-1" not in message and not [v for v in VALUES if v in message]
    assert not lease.held


def test_a_broken_secret_under_the_lease_is_named_not_refreshed():
    k, secret, lease, endpoint, events, _ = keeper(expiring_in(10))
    original_take = lease.take

    def take(now, seconds):
        secret.value = {k: v for k, v in SECRET.items() if k != "refresh_token"}
        return original_take(now, seconds)

    lease.take = take  # type: ignore[method-assign]
    with pytest.raises(CredentialsMissing, match="refresh_token"):
        k.fresh()
    assert endpoint.spent == [] and not lease.held


# --- the lease in the ledger table --------------------------------------------------------


@pytest.fixture
def ledger():
    with moto_ledger_table() as client:
        yield Ledger(client, LEDGER_TABLE)


def test_one_holder_at_a_time_until_released(ledger):
    assert LedgerLease(ledger, "a").take(NOW, 90)
    assert not LedgerLease(ledger, "b").take(NOW + 1, 90)
    assert LedgerLease(ledger, "a").release()
    assert LedgerLease(ledger, "b").take(NOW + 2, 90)


def test_a_dead_holders_lease_lapses_and_its_late_release_frees_nothing(ledger):
    assert LedgerLease(ledger, "a").take(NOW, 90)
    assert not LedgerLease(ledger, "b").take(NOW + 89, 90)
    assert LedgerLease(ledger, "b").take(NOW + 90, 90)
    assert not LedgerLease(ledger, "a").release()  # too late: b holds it
    assert not LedgerLease(ledger, "c").take(NOW + 100, 90)


def test_the_lease_is_not_a_follower_and_not_the_meta_item(ledger):
    LedgerLease(ledger, "a").take(NOW, 90)
    assert ledger.load_meta() is None
    assert OAUTH_REFRESH_KEY.startswith("#") and not OAUTH_REFRESH_KEY[1:].isdigit()  # X ids are numeric


# --- X's answers at the token endpoint ------------------------------------------------------


class FakeSession:
    def __init__(self, status: int | None, body: Any = None, error: Exception | None = None):
        self.status, self.body, self.error = status, body, error
        self.calls: list[dict[str, Any]] = []

    def post(self, url, data=None, auth=None):
        self.calls.append({"url": url, "data": dict(data), "auth": auth})
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code = self.status  # type: ignore[assignment]
        response._content = (self.body if isinstance(self.body, str) else json.dumps(self.body)).encode()
        return response

    def close(self):
        pass


@pytest.fixture
def token_endpoint(monkeypatch):
    def answer(status: int | None, body: Any = None, error: Exception | None = None) -> FakeSession:
        session = FakeSession(status, body, error)
        monkeypatch.setattr(x_account, "redirecting_session", lambda base_url: session)
        return session

    return answer


GOOD = {"token_type": "bearer", "expires_in": 7200, "access_token": "at-new", "scope": "dm.write offline.access", "refresh_token": "rt-new"}


def test_a_confidential_client_authenticates_with_basic_and_a_public_one_names_itself(token_endpoint):
    session = token_endpoint(200, GOOD)
    new = refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW)
    assert (new.access_token, new.refresh_token, new.expires_at) == ("at-new", "rt-new", NOW + 7200)
    assert session.calls[0]["url"] == "https://api.twitter.com/2/oauth2/token"
    assert session.calls[0]["auth"] == ("cid-VALUE-1", "csecret-VALUE-2")
    assert session.calls[0]["data"] == {"grant_type": "refresh_token", "refresh_token": "rt-VALUE-4"}
    public = validate_oauth2_credentials({k: v for k, v in SECRET.items() if k != "client_secret"})
    refresh_oauth2_tokens(public, base_url="http://x", now=NOW)
    assert session.calls[1]["auth"] is None and session.calls[1]["data"]["client_id"] == "cid-VALUE-1"


def test_an_answer_without_a_new_refresh_token_keeps_the_old_one(token_endpoint):
    token_endpoint(200, {k: v for k, v in GOOD.items() if k != "refresh_token"})
    assert refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW).refresh_token == "rt-VALUE-4"


@pytest.mark.parametrize("expires_in", ["absent", None, "7200", "soon", True, float("nan"), float("inf"), 0, -60, [7200]])
def test_an_answer_with_tokens_but_no_usable_expires_in_still_returns_them_for_two_hours(token_endpoint, expires_in):
    """X has spent the old refresh token by now: the new tokens must reach the secret, so a missing
    or garbled lifetime is taken as X's documented two hours instead of losing them."""
    body = {k: v for k, v in GOOD.items() if k != "expires_in"}
    if expires_in != "absent":
        body["expires_in"] = expires_in
    token_endpoint(200, body)
    new = refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW)
    assert (new.access_token, new.refresh_token) == ("at-new", "rt-new")
    assert new.expires_at == NOW + x_account.DEFAULT_ACCESS_TOKEN_SECONDS == NOW + 2 * 60 * 60


def test_a_usable_expires_in_is_kept_even_when_it_is_not_two_hours(token_endpoint):
    token_endpoint(200, {**GOOD, "expires_in": 1800.5})
    assert refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW).expires_at == NOW + 1800.5


@pytest.mark.parametrize(
    "status, body, error, says",
    [
        (400, {"error": "invalid_grant", "error_description": "rt-VALUE-4 is spent"}, CredentialsRejected, "Re-authorize"),
        (
            400,
            {"error": "invalid_request", "error_description": "Value passed for the token was invalid."},
            CredentialsRejected,
            "Re-authorize",
        ),
        (401, {"error": "invalid_client"}, CredentialsRejected, "client_id and client_secret"),
        (401, "", CredentialsRejected, "client_id and client_secret"),
        (429, {"title": "Too Many Requests"}, XUnavailable, "429"),
        (503, "", XUnavailable, "503"),
        (200, {"token_type": "bearer"}, UnexpectedAnswer, "no access_token"),
        (200, "<html>", UnexpectedAnswer, "no access_token"),
        (403, {"error": "rt-VALUE-4"}, UnexpectedAnswer, "403"),
    ],
)
def test_x_refusing_or_failing_the_refresh_is_named_without_any_value(token_endpoint, status, body, error, says):
    token_endpoint(status, body)
    with pytest.raises(error) as caught:
        refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW)
    assert says in str(caught.value)
    assert not [v for v in VALUES if v in str(caught.value)], "an echoed value must not reach the message"


def test_no_answer_to_the_refresh_says_the_token_may_be_spent(token_endpoint):
    token_endpoint(None, error=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(XUnavailable, match="may|if X took it"):
        refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW)
    token_endpoint(None, error=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(XUnavailable, match="nothing was spent"):
        refresh_oauth2_tokens(validate_oauth2_credentials(SECRET), base_url="http://x", now=NOW)
