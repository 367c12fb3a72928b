"""Transport failures told apart by when they happened, through real tweepy over real HTTPS to
the sandbox (sandbox/tls.py): before the request left (refused, handshake, certificate) nothing
can have happened at X; after it was written (a TLS error while reading the answer) X may have
stored the DM or spent the refresh token. Also the users lookup and the followers count, read
from the sandbox like any other answer."""

from __future__ import annotations

import socket

import pytest
import requests

from courtesy import x_account
from courtesy.domain import follows_account
from courtesy.errors import RateLimited, SendOutcomeUnknown, UnexpectedAnswer, XUnavailable
from courtesy.x_account import USERS_LOOKUP_MAX_IDS, XAccount, refresh_oauth2_tokens, validate_oauth2_credentials
from sandbox import XSandbox
from sandbox.tls import HttpsSandbox


@pytest.fixture
def https_x():
    with HttpsSandbox() as sandbox:
        sandbox.add_followers(3, prefix="early")
        yield sandbox


@pytest.fixture
def trusted(https_x, monkeypatch):
    """requests (and so tweepy) trusts the sandbox's test CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", https_x.tls.ca_bundle)
    return https_x


@pytest.fixture
def untrusted(https_x, monkeypatch):
    """A client that trusts only the usual CAs: the sandbox's certificate fails verification."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return https_x


@pytest.fixture
def account(https_x):
    account = XAccount(https_x.credentials, base_url=https_x.base_url)
    yield account
    account.close()


def closed_port_url(scheme: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"  # nothing listens there now: the connection is refused


# --- a DM -----------------------------------------------------------------------------------


def test_a_tls_error_after_the_dm_request_was_written_is_an_unknown_outcome_and_x_holds_the_dm(trusted, account):
    fan = trusted.follower_ids()[0]
    trusted.tls_error_after_request_next()
    with pytest.raises(SendOutcomeUnknown, match="SSLError"):
        account.send_dm(fan, "Welcome!")
    assert [dm["text"] for dm in trusted.dms_to(fan)] == ["Welcome!"], "the sandbox stored it: resending would double it"
    assert account.send_dm(fan, "and the connection after it works") is not None


def test_an_untrusted_certificate_fails_before_anything_is_sent(untrusted, account):
    with pytest.raises(XUnavailable, match=r"Could not connect to X to send a DM \(SSLError\)"):
        account.send_dm(untrusted.follower_ids()[0], "Welcome!")
    assert untrusted.dm_log == [] and untrusted.requests == [], "nothing reached the handler"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_connection_sends_nothing(scheme):
    account = XAccount(XSandbox().credentials, base_url=closed_port_url(scheme))
    with pytest.raises(XUnavailable, match="Could not connect to X to send a DM"):
        account.send_dm("2000001", "Welcome!")
    account.close()


def test_a_tls_handshake_that_times_out_sends_nothing(monkeypatch):
    """urllib3 reports a handshake timeout as a read timeout; it still came before the request."""
    monkeypatch.setattr(x_account, "TIMEOUTS", (0.5, 0.3))
    with socket.socket() as silent:  # accepts TCP (the kernel's backlog) and never answers the hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        account = XAccount(XSandbox().credentials, base_url=f"https://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(XUnavailable, match=r"Could not connect to X to send a DM \(ReadTimeout\)"):
            account.send_dm("2000001", "Welcome!")
        account.close()


def test_an_error_raised_outside_the_adapter_counts_as_after_the_request_left(trusted, account, monkeypatch):
    """requests reads the body after the adapter returned: an error there carries no proof that
    nothing was sent, so it must never pass for one (the DM would be sent twice)."""

    def body_broke(**kwargs):
        raise requests.exceptions.SSLError("record layer failure while reading the body")

    monkeypatch.setattr(account._client, "create_direct_message", body_broke)
    with pytest.raises(SendOutcomeUnknown):
        account.send_dm(trusted.follower_ids()[0], "Welcome!")


# --- the OAuth 2.0 refresh -------------------------------------------------------------------


def test_a_tls_error_after_the_refresh_was_written_says_the_refresh_token_may_be_spent(trusted):
    tokens = validate_oauth2_credentials(trusted.issue_oauth2_tokens())
    trusted.tls_error_after_request_next()
    with pytest.raises(XUnavailable, match="No answer to the OAuth 2.0 token refresh \\(SSLError\\): if X took it") as caught:
        refresh_oauth2_tokens(tokens, base_url=trusted.base_url, now=trusted.now())
    assert not trusted.refresh_token_live(tokens.refresh_token), "X took it: the old refresh token is spent"
    assert tokens.refresh_token not in str(caught.value) and tokens.client_secret not in str(caught.value)


def test_an_untrusted_certificate_at_the_refresh_spends_nothing(untrusted):
    tokens = validate_oauth2_credentials(untrusted.issue_oauth2_tokens())
    with pytest.raises(XUnavailable, match="nothing was spent"):
        refresh_oauth2_tokens(tokens, base_url=untrusted.base_url, now=untrusted.now())
    assert untrusted.refresh_token_live(tokens.refresh_token) and untrusted.token_calls() == {}


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_refresh_connection_spends_nothing(scheme):
    tokens = validate_oauth2_credentials(XSandbox().issue_oauth2_tokens())
    with pytest.raises(XUnavailable, match="nothing was spent"):
        refresh_oauth2_tokens(tokens, base_url=closed_port_url(scheme), now=0)


def test_a_refresh_over_https_rotates_the_token(trusted):
    tokens = validate_oauth2_credentials(trusted.issue_oauth2_tokens())
    new = refresh_oauth2_tokens(tokens, base_url=trusted.base_url, now=trusted.now())
    assert trusted.refresh_token_live(new.refresh_token) and not trusted.refresh_token_live(tokens.refresh_token)


# --- reads: safe to make again either way, so X is unavailable either way ---------------------


def test_reads_are_unavailable_before_and_after_the_request_left(https_x, account, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(XUnavailable, match="could not be reached for me"):
        account.account_id()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", https_x.tls.ca_bundle)
    https_x.tls_error_after_request_next()
    with pytest.raises(XUnavailable, match="No complete answer from X for a users lookup"):
        account.lookup_users(https_x.follower_ids())
    assert account.account_id() == https_x.account_id


# --- the users lookup and the followers count, against the sandbox ----------------------------


def test_a_users_lookup_tells_followers_from_others_and_gone_users(trusted, account):
    follower, leaver, suspended = trusted.follower_ids()[:3]
    stranger = trusted.add_user(username="stranger", name="Stranger")["id"]
    trusted.remove_follower(leaver)
    trusted.suspend_user(suspended)
    trusted.rename(follower, username="renamed", name="New Name")
    found = account.lookup_users([follower, leaver, stranger, suspended, "1999999999", follower])
    assert list(found) == [follower, leaver, stranger, suspended, "1999999999"], "one entry per distinct id"
    assert found[suspended] is None and found["1999999999"] is None
    first, second, third = found[follower], found[leaver], found[stranger]
    assert first is not None and second is not None and third is not None
    assert (first.username, first.name) == ("renamed", "New Name")
    assert first.profile["connection_status"] == ["followed_by"] and first.profile["receives_your_dm"] is True
    assert follows_account(first) and not follows_account(second) and not follows_account(third)
    assert trusted.requests[-1]["query"]["user.fields"].split(",")[-1] == "connection_status"


def test_a_users_lookup_of_more_than_a_hundred_ids_is_batched(trusted, account):
    trusted.add_followers(USERS_LOOKUP_MAX_IDS + 20, prefix="late")
    ids = trusted.follower_ids()
    trusted.reset_counters()
    found = account.lookup_users(ids)
    assert set(found) == set(ids) and all(user is not None and follows_account(user) for user in found.values())
    sizes = [len(r["query"]["ids"].split(",")) for r in trusted.requests]
    assert sizes == [USERS_LOOKUP_MAX_IDS, len(ids) - USERS_LOOKUP_MAX_IDS]
    assert account.lookup_users([]) == {} and len(trusted.requests) == 2


def test_a_spent_users_lookup_window_is_known_from_the_headers(trusted, account):
    trusted.set_rate_limit("users_lookup", 1)
    assert account.users_lookup_spent() is None
    account.lookup_users(trusted.follower_ids()[:1])
    spent = account.users_lookup_spent()
    assert isinstance(spent, RateLimited) and spent.reset_at is not None
    before = len(trusted.requests)
    with pytest.raises(RateLimited):
        account.lookup_users(trusted.follower_ids())
    assert len(trusted.requests) == before, "no request spent on a certain 429"


def test_an_answer_that_leaves_an_id_out_decides_nothing(trusted, account):
    trusted.fail_next("users_lookup", 200, body={"data": [{"id": trusted.follower_ids()[0], "username": "a", "name": "A"}]})
    with pytest.raises(UnexpectedAnswer, match="says nothing of 1 of the 2 ids"):
        account.lookup_users(trusted.follower_ids()[:2])


def test_the_followers_count_is_the_accounts_public_metrics(trusted, account):
    assert account.followers_count() == 3
    trusted.set_followers_count_override(41)
    assert account.followers_count() == 41
    assert trusted.requests[-1]["path"] == "/2/users/me" and trusted.requests[-1]["query"]["user.fields"] == "public_metrics"
