"""The X adapter: the account's followers and its direct messages, through tweepy.

Everything that talks to X lives here. tweepy exceptions and transport errors
are translated into the product's errors (``courtesy.errors``); the rate-limit
headers of every answer are kept so the cycle can stop before X says 429.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

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
from courtesy.x_limits import DM_EVENTS_PAGE_MAX, FOLLOWERS_PAGE_MAX

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
# A DM conversation lookup reads at most this many events (each one billed).
DM_LOOKUP_PAGE_SIZE = 20
DM_LOOKUP_PAGES = 3
# (connect, read) seconds: a Lambda must never hang on one request.
TIMEOUTS = (3.05, 15)
# 403 problem types that are about the app or its tokens, not about the recipient.
_APP_PROBLEMS = ("oauth1-permissions", "client-forbidden", "unsupported-authentication", "usage-capped")


@dataclass(frozen=True)
class Follower:
    id: str
    username: str
    name: str
    profile: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FollowersPage:
    followers: list[Follower]
    next_token: str | None


@dataclass(frozen=True)
class DmEvent:
    """One message in the account's DM events (sent or received)."""

    id: str
    sender_id: str
    text: str
    created_at: datetime
    conversation_id: str
    sender_username: str = ""  # only when asked for (with_senders)
    sender_name: str = ""


@dataclass(frozen=True)
class DmEventsPage:
    events: list[DmEvent]  # newest first
    next_token: str | None


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
    except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
        raise XUnavailable(f"Could not connect to X to refresh the OAuth 2.0 token ({type(exc).__name__}); nothing was spent") from None
    except requests.exceptions.RequestException as exc:
        if isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
            raise XUnavailable("Could not connect to X to refresh the OAuth 2.0 token; nothing was spent") from None
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
    if not isinstance(access, str) or not access or not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool):
        raise UnexpectedAnswer("X's OAuth 2.0 token answer has no access_token or expires_in")
    if refresh is not None and (not isinstance(refresh, str) or not refresh):
        raise UnexpectedAnswer("X's OAuth 2.0 token answer has a malformed refresh_token")
    return OAuth2Tokens(
        client_id=tokens.client_id,
        client_secret=tokens.client_secret,
        access_token=access,
        # RFC 6749 6: without a new refresh token, the one sent stays valid.
        refresh_token=refresh or tokens.refresh_token,
        expires_at=now + float(expires_in),
        extra=tokens.extra,
    )


class _RedirectingAdapter(HTTPAdapter):
    """Sends tweepy's requests (hard-coded to X's host) to the configured base URL, with timeouts."""

    def __init__(self, base_url: str):
        super().__init__(max_retries=0)  # never resend on our own: a DM has no idempotency key
        self._base = urlsplit(base_url)

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        url = urlsplit(request.url)
        path = self._base.path.rstrip("/") + url.path
        request.url = urlunsplit((self._base.scheme, self._base.netloc, path, url.query, ""))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUTS
        return super().send(request, **kwargs)


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
        followers = []
        for user in data:
            if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"].isdigit():
                raise UnexpectedAnswer("X's followers answer holds a user without a numeric string id")
            profile = {k: v for k, v in user.items() if k not in ("id", "username", "name")}
            followers.append(Follower(user["id"], str(user.get("username", "")), str(user.get("name", "")), profile))
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
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise XUnavailable(f"Could not connect to X to send a DM ({type(exc).__name__})") from None
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                raise XUnavailable("Could not connect to X to send a DM") from None
            raise SendOutcomeUnknown(f"The connection dropped after the DM request was sent ({type(exc).__name__})") from None
        except requests.exceptions.RequestException as exc:
            # A read timeout or a broken answer: X may have stored the message.
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
            raise XUnavailable(f"X could not be reached for {what} ({type(exc).__name__})") from None
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


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time as X and the ledger write it ("...Z"), in UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the request provably never reached X (refused or unresolvable)."""
    text = repr(exc.args[0]) if exc.args else ""
    return "NewConnectionError" in text or "NameResolutionError" in text or "Connection refused" in text
