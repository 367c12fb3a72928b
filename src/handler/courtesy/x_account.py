"""The X adapter: the account's followers and its direct messages, through tweepy.

Everything that talks to X lives here. tweepy exceptions and transport errors
are translated into the product's errors (``courtesy.errors``); the rate-limit
headers of every answer are kept so the cycle can stop before X says 429.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from courtesy.domain import DmEvent, DmEventsPage, Follower, FollowersPage, follower_from_user, parse_time
from courtesy.errors import (
    AppNotPermitted,
    CredentialsMissing,
    CredentialsRejected,
    MessageRejected,
    RateLimited,
    RecipientCannotBeMessaged,
    SendOutcomeUnknown,
    UnexpectedAnswer,
    XUnavailable,
)
from courtesy.x_limits import ACCESS_TOKEN_SECONDS, DM_EVENTS_PAGE_MAX, FOLLOWERS_PAGE_MAX, USERS_LOOKUP_MAX_IDS

CREDENTIAL_KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
# OAuth 2.0 user context: client_secret too for a confidential client (none for a public one).
OAUTH2_KEYS = ("client_id", "access_token", "refresh_token", "expires_at")
OAUTH2_OPTIONAL_KEYS = ("client_secret",)
# X's token endpoint (on the same host as the API, so X_API_BASE_URL redirects it too).
TOKEN_URL = "https://api.twitter.com/2/oauth2/token"  # noqa: S105 - a URL, not a password
# Refusals of a refresh token (RFC 6749 5.2): X answers invalid_request for a spent one.
_REFUSED_GRANT = ("invalid_grant", "invalid_request")
# Profile fields asked for in the same followers call, so later filters cost no extra request.
FOLLOWER_FIELDS = ["created_at", "profile_image_url", "protected", "public_metrics", "verified", "receives_your_dm"]
# A users lookup also asks for the account's relations to each user ("followed_by": they follow it).
LOOKUP_FIELDS = [*FOLLOWER_FIELDS, "connection_status"]
# Assumed when a token answer omits or garbles expires_in: X's documented lifetime.
DEFAULT_ACCESS_TOKEN_SECONDS = ACCESS_TOKEN_SECONDS
# A DM conversation lookup reads at most this many events (each one billed).
DM_LOOKUP_PAGE_SIZE = 20
DM_LOOKUP_PAGES = 3
# (connect, read) seconds: a Lambda must never hang on one request.
TIMEOUTS = (3.05, 15)
# 403 problem types that are about the app or its tokens, not about the recipient.
_APP_PROBLEMS = ("oauth1-permissions", "client-forbidden", "unsupported-authentication", "usage-capped")


@dataclass
class RateWindow:
    """What X's x-rate-limit-* headers last said about one endpoint."""

    remaining: int | None = None
    reset_at: float | None = None

    def spent(self, now: float) -> bool:
        return self.remaining is not None and self.remaining <= 0 and (self.reset_at or 0) > now


def validate_credentials(secret: Any) -> dict[str, str]:
    """Check the secret's shape, naming missing keys but never printing a value."""
    if not isinstance(secret, dict):
        raise CredentialsMissing("The X credentials secret must be a JSON object with " + ", ".join(CREDENTIAL_KEYS))
    missing = [k for k in CREDENTIAL_KEYS if not isinstance(secret.get(k), str) or not secret[k].strip()]
    placeholders = [k for k in CREDENTIAL_KEYS if k not in missing and secret[k].strip() == "REPLACE_ME"]
    if missing or placeholders:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if placeholders:
            parts.append("still the placeholder: " + ", ".join(placeholders))
        raise CredentialsMissing("The X credentials secret is incomplete (" + "; ".join(parts) + ")")
    return {k: secret[k].strip() for k in CREDENTIAL_KEYS}


def is_oauth2(secret: Any) -> bool:
    """True when the secret holds OAuth 2.0 user-context tokens rather than OAuth 1.0a ones."""
    return isinstance(secret, dict) and any(k in secret for k in ("client_id", "refresh_token"))


@dataclass(frozen=True, repr=False)
class OAuth2Tokens:
    """An OAuth 2.0 user-context credential. Its repr shows no token."""

    client_id: str
    client_secret: str | None
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds
    extra: Mapping[str, Any] = field(default_factory=dict)  # other keys of the secret, kept on write-back

    def __repr__(self) -> str:
        return f"OAuth2Tokens(confidential={self.client_secret is not None}, expires_at={self.expires_at:.0f})"

    def expires_within(self, now: float, seconds: float) -> bool:
        return self.expires_at - now <= seconds

    def as_secret(self) -> dict[str, Any]:
        secret = {**self.extra, "client_id": self.client_id}
        if self.client_secret is not None:
            secret["client_secret"] = self.client_secret
        secret.update(access_token=self.access_token, refresh_token=self.refresh_token, expires_at=int(self.expires_at))
        return secret


def validate_oauth2_credentials(secret: Any) -> OAuth2Tokens:
    """Check an OAuth 2.0 secret's shape, naming missing keys but never printing a value."""
    if not isinstance(secret, dict):
        raise CredentialsMissing("The X credentials secret must be a JSON object with " + ", ".join(OAUTH2_KEYS))

    def text(key: str) -> bool:
        return isinstance(secret.get(key), str) and bool(secret[key].strip())

    raw_expiry = secret.get("expires_at")
    expires_at = _epoch(str(raw_expiry)) if isinstance(raw_expiry, (int, float, str)) and not isinstance(raw_expiry, bool) else None
    if expires_at is not None and not math.isfinite(expires_at):
        expires_at = None
    missing = [k for k in OAUTH2_KEYS if (k == "expires_at" and expires_at is None) or (k != "expires_at" and not text(k))]
    present = [k for k in (*OAUTH2_KEYS, *OAUTH2_OPTIONAL_KEYS) if k not in missing and text(k)]
    placeholders = [k for k in present if secret[k].strip() == "REPLACE_ME"]
    bad_secret = "client_secret" in secret and secret["client_secret"] not in (None, "") and not text("client_secret")
    if missing or placeholders or bad_secret:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing) + (" (epoch seconds)" if "expires_at" in missing else ""))
        if placeholders:
            parts.append("still the placeholder: " + ", ".join(placeholders))
        if bad_secret:
            parts.append("client_secret must be a string, or absent for a public client")
        raise CredentialsMissing("The X OAuth 2.0 credentials secret is incomplete (" + "; ".join(parts) + ")")
    client_secret = secret["client_secret"].strip() if text("client_secret") else None
    known = (*OAUTH2_KEYS, *OAUTH2_OPTIONAL_KEYS)
    return OAuth2Tokens(
        client_id=secret["client_id"].strip(),
        client_secret=client_secret,
        access_token=secret["access_token"].strip(),
        refresh_token=secret["refresh_token"].strip(),
        expires_at=float(expires_at),  # type: ignore[arg-type]  # None is reported as missing above
        extra={k: v for k, v in secret.items() if k not in known},
    )


def redirecting_session(base_url: str) -> requests.Session:
    """A session whose requests to X's hard-coded host go to ``base_url`` instead, with timeouts."""
    session = requests.Session()
    session.mount("https://", _RedirectingAdapter(base_url))
    session.mount("http://", _RedirectingAdapter(base_url))
    return session


def refresh_oauth2_tokens(tokens: OAuth2Tokens, *, base_url: str, now: float) -> OAuth2Tokens:
    """Spend the refresh token at X's token endpoint; returns the new tokens (not yet stored).

    X rotates refresh tokens: once X has answered, the old one is spent, so the caller must
    store the answer before anything else. Raises CredentialsRejected when X refuses the
    refresh token or the client, XUnavailable when X could not be reached or answered 5xx
    or 429, UnexpectedAnswer for an answer without tokens. No message carries a token."""
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    auth: tuple[str, str] | None = None
    if tokens.client_secret is not None:
        auth = (tokens.client_id, tokens.client_secret)  # a confidential client: HTTP Basic
    else:
        form["client_id"] = tokens.client_id  # a public client names itself in the body
    session = redirecting_session(base_url)
    try:
        response = session.post(TOKEN_URL, data=form, auth=auth)
    except requests.exceptions.RequestException as exc:
        if _never_sent(exc):
            raise XUnavailable(f"Could not connect to X to refresh the OAuth 2.0 token ({type(exc).__name__}); nothing was spent") from None
        raise XUnavailable(
            f"No answer to the OAuth 2.0 token refresh ({type(exc).__name__}): if X took it, the refresh token is spent "
            "and the next run reports it refused"
        ) from None
    finally:
        session.close()
    body = _problem(response)
    error = str(body.get("error", ""))
    error = error if error.replace("_", "").isalpha() and len(error) <= 40 else ""  # a code, never an echoed value
    if response.status_code in (400, 401) and (error == "invalid_client" or (response.status_code == 401 and not error)):
        raise CredentialsRejected(
            f"X rejected the OAuth 2.0 client ({response.status_code} {error or 'unauthorized'}): check client_id and "
            "client_secret in the secret (a public client has no client_secret)"
        )
    if response.status_code in (400, 401) and error in _REFUSED_GRANT:
        raise CredentialsRejected(
            f"X refused the OAuth 2.0 refresh token ({response.status_code} {error}): it was revoked, already used or has "
            "expired. Re-authorize the app for the account and put the new tokens in the secret"
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise XUnavailable(f"X answered {response.status_code} to the OAuth 2.0 token refresh")
    if response.status_code != 200:
        raise UnexpectedAnswer(f"X answered {response.status_code} {error} to the OAuth 2.0 token refresh".rstrip())
    access, refresh, expires_in = body.get("access_token"), body.get("refresh_token"), body.get("expires_in")
    if not isinstance(access, str) or not access:
        raise UnexpectedAnswer("X's OAuth 2.0 token answer has no access_token")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise UnexpectedAnswer("X's OAuth 2.0 token answer has a malformed refresh_token")
    # The old refresh token is spent now: a doubtful lifetime must not lose the new tokens.
    lifetime: float = DEFAULT_ACCESS_TOKEN_SECONDS
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and math.isfinite(expires_in) and expires_in > 0:
        lifetime = float(expires_in)
    return OAuth2Tokens(
        client_id=tokens.client_id,
        client_secret=tokens.client_secret,
        access_token=access,
        # RFC 6749 6: without a new refresh token, the one sent stays valid.
        refresh_token=refresh or tokens.refresh_token,
        expires_at=now + lifetime,
        extra=tokens.extra,
    )


# --- when a transport error happened: before the request left, or after ----------------------
#
# A TLS or connection error says nothing about whether X got the request: a failed handshake
# comes before anything is sent, a broken record while reading the answer comes after X may
# have acted (stored a DM, spent a refresh token). urllib3 2.x's HTTPConnectionPool._make_request
# connects (and, for HTTPS, shakes hands) in _validate_conn, then writes with conn.request(),
# then reads with conn.getresponse(). The pool and connection classes below record, per request,
# that the pool was entered and whether conn.request() began; an error raised with the pool
# entered and nothing begun provably left nothing behind at X. Anything else, including errors
# while requests reads the body after the adapter returned, may have come after X acted.


class _Attempt:
    """One request through _RedirectingAdapter: how far urllib3 got."""

    __slots__ = ("pooled", "writing")

    def __init__(self) -> None:
        self.pooled = False  # our pool took the request (so our connection class is in use)
        self.writing = False  # conn.request() began: bytes may have reached X


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("courtesy_x_attempt", default=None)
_NOT_SENT = "courtesy_not_sent"  # set on a requests exception raised before anything was written


class _TrackedConnection:
    """Mixed into urllib3's connections: marks the attempt once the request starts going out."""

    def request(self, *args, **kwargs):
        if self.is_closed:  # plain HTTP connects lazily, inside request(); connecting sends nothing
            self.connect()
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.writing = True
        return super().request(*args, **kwargs)


class _TrackedPool:
    """Mixed into urllib3's pools: proves the request took the tracked path."""

    def urlopen(self, *args, **kwargs):
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.pooled = True
        return super().urlopen(*args, **kwargs)


class _HTTPConnection(_TrackedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_TrackedConnection, HTTPSConnection):
    pass


class _HTTPPool(_TrackedPool, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_TrackedPool, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the request provably never left (connect or TLS handshake failed): X cannot have acted."""
    return isinstance(exc, requests.exceptions.ConnectTimeout) or getattr(exc, _NOT_SENT, False) is True


class _RedirectingAdapter(HTTPAdapter):
    """Sends tweepy's requests (hard-coded to X's host) to the configured base URL, with timeouts,
    and marks the transport errors raised before the request left (see _never_sent)."""

    def __init__(self, base_url: str):
        super().__init__(max_retries=0)  # never resend on our own: a DM has no idempotency key
        self._base = urlsplit(base_url)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        url = urlsplit(request.url)
        path = self._base.path.rstrip("/") + url.path
        request.url = urlunsplit((self._base.scheme, self._base.netloc, path, url.query, ""))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUTS
        attempt = _Attempt()
        token = _ATTEMPT.set(attempt)
        try:
            return super().send(request, **kwargs)
        except requests.exceptions.RequestException as exc:
            if attempt.pooled and not attempt.writing:
                setattr(exc, _NOT_SENT, True)
            raise
        finally:
            _ATTEMPT.reset(token)


def _problem(response: requests.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {"detail": (response.text or "")[:200]}
    return body if isinstance(body, dict) else {}


def _epoch(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class XAccount:
    """The account's view of X: who follows it, and sending one DM."""

    def __init__(self, credentials: dict[str, Any], *, base_url: str, clock=time.time):
        # The raw response keeps the rate-limit headers that tweepy's parsed Response drops.
        if is_oauth2(credentials):
            # OAuth 2.0 user context: the user's access token as a bearer token, user_auth=False.
            token = validate_oauth2_credentials(credentials).access_token
            self._client = tweepy.Client(bearer_token=token, return_type=requests.Response, wait_on_rate_limit=False)
            self._user_auth = False
            self._rejected = "X rejected the OAuth 2.0 access token (401): revoked, or the app's authorization was removed"
        else:
            creds = validate_credentials(credentials)
            self._client = tweepy.Client(**creds, return_type=requests.Response, wait_on_rate_limit=False)
            self._user_auth = True  # OAuth 1.0a user context
            self._rejected = "X rejected the credentials (401); check the secret's keys and tokens"
        self._client.session.mount("https://", _RedirectingAdapter(base_url))
        self._client.session.mount("http://", _RedirectingAdapter(base_url))
        self._clock = clock
        self.dm_window = RateWindow()
        self.dm_day_window = RateWindow()
        self.followers_window = RateWindow()
        self.dm_lookup_window = RateWindow()
        self.users_lookup_window = RateWindow()

    def close(self) -> None:
        """Let go of pooled connections at the end of a run."""
        self._client.session.close()

    # --- reads ---------------------------------------------------------------

    def account_id(self) -> str:
        response = self._call("me", lambda: self._client.get_me(user_auth=self._user_auth))
        data = self._json(response).get("data")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise UnexpectedAnswer("X's /2/users/me answer has no data.id")
        return data["id"]

    def followers_count(self) -> int:
        """How many followers X says the account has (its public_metrics): whether an empty
        followers page can be true."""
        response = self._call("me", lambda: self._client.get_me(user_auth=self._user_auth, user_fields=["public_metrics"]))
        data = self._json(response).get("data")
        metrics = data.get("public_metrics") if isinstance(data, dict) else None
        count = metrics.get("followers_count") if isinstance(metrics, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UnexpectedAnswer("X's /2/users/me answer has no public_metrics.followers_count")
        return count

    def lookup_users(self, ids: Sequence[str]) -> dict[str, Follower | None]:
        """These users as X shows them now, with the account's relations to them (follows_account).

        GET /2/users?ids=, at most USERS_LOOKUP_MAX_IDS a request; each user returned is billed.
        One entry per distinct id: a Follower, or None when X answered that id in its partial
        ``errors`` array (unknown, deleted, suspended). Raises UnexpectedAnswer when the answer
        leaves an id unaccounted for, so the caller decides nothing from it."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Follower | None] = {}
        for start in range(0, len(wanted), USERS_LOOKUP_MAX_IDS):
            if limited := self.users_lookup_spent():
                raise limited  # rather than spend a request on a certain 429
            batch = wanted[start : start + USERS_LOOKUP_MAX_IDS]
            response = self._call(
                "a users lookup",
                lambda batch=batch: self._client.get_users(ids=batch, user_fields=LOOKUP_FIELDS, user_auth=self._user_auth),
            )
            self._note_window(self.users_lookup_window, response)
            body = self._json(response)
            data, errors = body.get("data", []), body.get("errors", [])
            if not isinstance(data, list) or not isinstance(errors, list):
                raise UnexpectedAnswer("X's users lookup answer has no data list")
            answered: dict[str, Follower | None] = {}
            for raw in data:
                user = _follower(raw, "users lookup")
                if not isinstance(user.profile.get("connection_status", []), list):
                    raise UnexpectedAnswer("X's users lookup answer holds a connection_status that is not a list")
                answered[user.id] = user
            for error in errors:  # X names the id it could not return in resource_id (and value)
                missing = error.get("resource_id", error.get("value")) if isinstance(error, dict) else None
                if isinstance(missing, str) and error.get("resource_type", "user") == "user":
                    answered.setdefault(missing, None)
            unaccounted = [i for i in batch if i not in answered]
            if unaccounted:
                raise UnexpectedAnswer(f"X's users lookup answer says nothing of {len(unaccounted)} of the {len(batch)} ids asked")
            found.update((i, answered[i]) for i in batch)
        return found

    def users_lookup_spent(self) -> RateLimited | None:
        """A RateLimited if X's last headers say no users lookup can be made now (no request made)."""
        if self.users_lookup_window.spent(self._clock()):
            return RateLimited("X's users lookup rate limit is spent", reset_at=self.users_lookup_window.reset_at)
        return None

    def followers_page(self, account_id: str, *, max_results: int, token: str | None = None) -> FollowersPage:
        """One page of followers, newest first (as X documents it, not guarantees it)."""
        max_results = max(1, min(FOLLOWERS_PAGE_MAX, max_results))
        response = self._call(
            "followers",
            lambda: self._client.get_users_followers(
                account_id,
                user_auth=self._user_auth,
                max_results=max_results,
                pagination_token=token,
                user_fields=FOLLOWER_FIELDS,
            ),
        )
        self._note_window(self.followers_window, response)
        body = self._json(response)
        data = body.get("data", [])
        meta = body.get("meta")
        if not isinstance(data, list) or not isinstance(meta, dict):
            raise UnexpectedAnswer("X's followers answer has no data list or meta object")
        followers = [_follower(user, "followers") for user in data]
        next_token = meta.get("next_token")
        return FollowersPage(followers, next_token if isinstance(next_token, str) and next_token else None)

    def find_sent_dm(self, account_id: str, participant_id: str, *, since: datetime) -> str | None:
        """The id of a message the account sent to this person at or after ``since``, or None.

        Reads the 1:1 conversation newest first (each event read is billed) and stops at
        the first event older than ``since``. Raises UnexpectedAnswer when the answer cannot
        settle the question, so the caller leaves the record uncertain."""
        token = None
        for _ in range(DM_LOOKUP_PAGES):
            response = self._call(
                "a DM conversation lookup",
                lambda token=token: self._client.get_direct_message_events(
                    participant_id=participant_id,
                    dm_event_fields=["id", "event_type", "sender_id", "created_at"],
                    event_types="MessageCreate",
                    max_results=DM_LOOKUP_PAGE_SIZE,
                    pagination_token=token,
                    user_auth=self._user_auth,
                ),
            )
            self._note_window(self.dm_lookup_window, response)
            body = self._json(response)
            events, meta = body.get("data", []), body.get("meta")
            if not isinstance(events, list) or not isinstance(meta, dict):
                raise UnexpectedAnswer("X's DM events answer has no data list or meta object")
            for event in events:
                created = parse_time(event.get("created_at") if isinstance(event, dict) else None)
                if created is None:
                    raise UnexpectedAnswer("X's DM events answer holds an event without created_at")
                if created < since:
                    return None  # newest first: everything after this is older still
                if event.get("sender_id") == account_id and isinstance(event.get("id"), str):
                    return event["id"]
            token = meta.get("next_token")
            if not isinstance(token, str) or not token:
                return None
        raise UnexpectedAnswer("The conversation is too long to check within the lookup budget")

    def dm_events_page(self, *, max_results: int, token: str | None = None, with_senders: bool = False) -> DmEventsPage:
        """One page of the account's DM events (messages sent and received), newest first.
        Each event returned is billed; the caller keeps pages small. ``with_senders`` also
        asks for each sender's name and username (to greet people who do not follow)."""
        senders = {"expansions": ["sender_id"], "user_fields": ["username", "name"]} if with_senders else {}
        response = self._call(
            "the DM events lookup",
            lambda: self._client.get_direct_message_events(
                dm_event_fields=["id", "event_type", "text", "sender_id", "created_at", "dm_conversation_id"],
                event_types="MessageCreate",
                max_results=max(1, min(DM_EVENTS_PAGE_MAX, max_results)),
                pagination_token=token,
                user_auth=self._user_auth,
                **senders,
            ),
        )
        self._note_window(self.dm_lookup_window, response)
        body = self._json(response)
        data, meta = body.get("data", []), body.get("meta")
        if not isinstance(data, list) or not isinstance(meta, dict):
            raise UnexpectedAnswer("X's DM events answer has no data list or meta object")
        includes = body.get("includes")
        users = includes.get("users") if isinstance(includes, dict) else None
        people = {u["id"]: u for u in users if isinstance(u, dict) and isinstance(u.get("id"), str)} if isinstance(users, list) else {}
        events = []
        for raw in data:
            if not isinstance(raw, dict):
                raise UnexpectedAnswer("X's DM events answer holds an event that is not an object")
            event_id, sender, created = raw.get("id"), raw.get("sender_id"), parse_time(raw.get("created_at"))
            if not (isinstance(event_id, str) and event_id.isdigit() and isinstance(sender, str) and created):
                raise UnexpectedAnswer("X's DM events answer holds an event without a numeric id, sender_id or created_at")
            text, conversation = raw.get("text"), raw.get("dm_conversation_id")
            person = people.get(sender, {})
            events.append(
                DmEvent(
                    event_id,
                    sender,
                    text if isinstance(text, str) else "",
                    created,
                    str(conversation or ""),
                    str(person.get("username", "")),
                    str(person.get("name", "")),
                )
            )
        next_token = meta.get("next_token")
        return DmEventsPage(events, next_token if isinstance(next_token, str) and next_token else None)

    def dm_lookups_spent(self) -> RateLimited | None:
        """A RateLimited if X's last headers say no DM lookup can be made now (no request made)."""
        if self.dm_lookup_window.spent(self._clock()):
            return RateLimited("X's DM lookup rate limit is spent", reset_at=self.dm_lookup_window.reset_at)
        return None

    # --- the one write -------------------------------------------------------

    def dm_sends_spent(self) -> RateLimited | None:
        """A RateLimited if X's last headers say no DM can be sent now (no request made)."""
        now = self._clock()
        for window in (self.dm_window, self.dm_day_window):
            if window.spent(now):
                return RateLimited("X's DM rate limit is spent", reset_at=window.reset_at)
        return None

    def send_dm(self, recipient_id: str, text: str) -> str | None:
        """Send one DM; returns X's dm_event_id. Raises product errors for every failure."""
        try:
            response = self._client.create_direct_message(participant_id=recipient_id, text=text, user_auth=self._user_auth)
        except requests.exceptions.RequestException as exc:
            if _never_sent(exc):
                raise XUnavailable(f"Could not connect to X to send a DM ({type(exc).__name__})") from None
            # The request left (a dropped connection, a read timeout, a TLS error in the answer):
            # X may have stored the message.
            raise SendOutcomeUnknown(f"No complete answer to the DM request ({type(exc).__name__})") from None
        except tweepy.HTTPException as exc:
            self._note_dm_windows(exc.response)
            self._raise_for_send(exc)
        self._note_dm_windows(response)
        try:
            data = response.json().get("data") or {}
            event_id = data.get("dm_event_id")
        except (ValueError, AttributeError):
            event_id = None
        # A 2xx means X accepted the message, whatever the body looks like.
        return event_id if isinstance(event_id, str) else None

    # --- helpers -------------------------------------------------------------

    def _raise_for_send(self, exc: tweepy.HTTPException) -> None:
        problem = _problem(exc.response)
        detail = str(problem.get("detail") or problem.get("title") or "")[:200]
        kind = str(problem.get("type", ""))
        if isinstance(exc, tweepy.TooManyRequests):
            raise _rate_limited(exc, problem) from None
        if isinstance(exc, tweepy.Unauthorized):
            raise CredentialsRejected(self._rejected) from None
        if isinstance(exc, tweepy.Forbidden):
            if any(p in kind for p in _APP_PROBLEMS):
                raise AppNotPermitted(f"X refused the app itself (403 {kind}): {detail}") from None
            raise RecipientCannotBeMessaged(f"403: {detail}") from None
        if isinstance(exc, tweepy.NotFound):
            raise RecipientCannotBeMessaged(f"404: {detail}") from None
        if isinstance(exc, tweepy.BadRequest):
            raise MessageRejected(f"400: {detail}") from None
        status = exc.response.status_code
        if status == 503:
            # Service unavailable: refused at the door, nothing was stored.
            raise XUnavailable(f"X answered 503 to a DM request: {detail}") from None
        # Any other 5xx (500, 502, 504) may come after X stored the message.
        raise SendOutcomeUnknown(f"X answered {status} to a DM request: {detail}") from None

    def _call(self, what: str, request):  # type: ignore[no-untyped-def]
        try:
            return request()
        except requests.exceptions.RequestException as exc:
            # A read is safe to make again whether or not it left: X is unavailable either way.
            if _never_sent(exc):
                raise XUnavailable(f"X could not be reached for {what} ({type(exc).__name__})") from None
            raise XUnavailable(f"No complete answer from X for {what} ({type(exc).__name__})") from None
        except tweepy.TooManyRequests as exc:
            raise _rate_limited(exc, _problem(exc.response)) from None
        except tweepy.Unauthorized:
            raise CredentialsRejected(self._rejected) from None
        except tweepy.Forbidden as exc:
            problem = _problem(exc.response)
            raise AppNotPermitted(f"X refused {what} (403 {problem.get('type', '')}): {problem.get('detail', '')}") from None
        except tweepy.TwitterServerError as exc:
            raise XUnavailable(f"X answered {exc.response.status_code} for {what}") from None
        except tweepy.HTTPException as exc:
            problem = _problem(exc.response)
            raise UnexpectedAnswer(f"X answered {exc.response.status_code} for {what}: {problem.get('detail', '')}") from None

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise UnexpectedAnswer(f"X answered {response.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise UnexpectedAnswer("X answered with JSON that is not an object")
        return body

    def _note_window(self, window: RateWindow, response: requests.Response | None) -> None:
        if response is None:
            return
        remaining = response.headers.get("x-rate-limit-remaining")
        if remaining is not None and remaining.isdigit():
            window.remaining = int(remaining)
            window.reset_at = _epoch(response.headers.get("x-rate-limit-reset"))

    def _note_dm_windows(self, response: requests.Response | None) -> None:
        self._note_window(self.dm_window, response)
        if response is None:
            return
        remaining = response.headers.get("x-user-limit-24hour-remaining")
        if remaining is not None and remaining.isdigit():
            self.dm_day_window.remaining = int(remaining)
            self.dm_day_window.reset_at = _epoch(response.headers.get("x-user-limit-24hour-reset"))


def _rate_limited(exc: tweepy.TooManyRequests, problem: dict[str, Any]) -> RateLimited:
    capped = "usage-capped" in str(problem.get("type", ""))
    reset = exc.reset_time if getattr(exc, "reset_time", None) else None
    if reset is None:
        reset = _epoch(exc.response.headers.get("x-user-limit-24hour-reset"))
    what = "X's usage cap is exceeded" if capped else "X's rate limit is reached (429)"
    return RateLimited(what, reset_at=reset, usage_capped=capped)


def _follower(user: Any, answer: str) -> Follower:
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"].isdigit():
        raise UnexpectedAnswer(f"X's {answer} answer holds a user without a numeric string id")
    return follower_from_user(user)
