"""A local X API v2 sandbox: a real HTTP server for the endpoints Courtesy uses.

Served endpoints (shapes, limits and errors follow X's public documentation):

    GET  /2/users/me
    GET  /2/users?ids=…   (user lookup, with connection_status)
    GET  /2/users/:id/followers
    POST /2/dm_conversations/with/:participant_id/messages
    GET  /2/dm_events
    GET  /2/dm_conversations/with/:participant_id/dm_events
    GET  /2/dm_conversations/:dm_conversation_id/dm_events

    POST /2/oauth2/token   (grant_type=refresh_token only)

    The X Activity API (webhooks, activity subscriptions, signed event deliveries, replay):
    see activity.py, mixed in here.

    Not X: a local control API under /_sandbox/ (loopback clients only) to make people follow,
    unfollow and write, and to list the DMs sent: see control.py, mixed in here.

Every /2/ request needs user context: OAuth 1.0a with the configured
credentials and a valid HMAC-SHA1 signature, or an OAuth 2.0 user access
token (``Authorization: Bearer``) that the sandbox issued and that has not
expired on the sandbox clock.  tweepy always signs for https://api.twitter.com
(its host is hard-coded), so a signature is accepted when it matches either
that host or the sandbox's own base URL.

OAuth 2.0 follows X: access tokens last two hours; each refresh returns a new
refresh token and spends the old one (a spent or unknown one is refused with
400 invalid_grant); a confidential client authenticates with HTTP Basic
(client_id:client_secret), a public one names its client_id in the body.
``issue_oauth2_tokens`` stands in for the authorization-code flow.

State lives in memory behind one lock (the server is threaded).  Tests read
the records (dm_log, users_returned, requests) and inject faults
(fail_next, drop_after_store_next, rate limits, latency, the clock).
The benchmark also reads billing (distinct users, and distinct DM events, returned
per UTC day of the sandbox clock, as X bills them) and when each follower followed.

The account can DM a follower, and also anyone who has written to it (replying
to a message request); either way only if they accept DMs (receives_dm), the
recipient is not suspended, and the account itself is not barred from sending
(restrict_dm_sending).  A suspended user (suspend_user) leaves the followers list
and comes back from a user lookup as an error entry.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import math
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from oauthlib.common import safe_string_equals
from oauthlib.oauth1.rfc5849 import signature as oauth_sig
from oauthlib.oauth1.rfc5849 import utils as oauth_utils

from .activity import ActivityMixin
from .control import ControlMixin

X_HOST = "https://api.twitter.com"

DEFAULT_CREDENTIALS = {
    "consumer_key": "sandbox-consumer-key",
    "consumer_secret": "sandbox-consumer-secret",
    "access_token": "1000-sandbox-access-token",
    "access_token_secret": "sandbox-access-token-secret",
    # The app-only bearer token: the webhook and activity-subscription endpoints (activity.py) take it.
    "bearer_token": "sandbox-app-bearer-token",
}

# OAuth 2.0 clients registered with the sandbox: client_id -> client_secret (None: a public client).
DEFAULT_OAUTH2_CLIENTS: dict[str, str | None] = {
    "sandbox-oauth2-confidential": "sandbox-oauth2-client-secret",
    "sandbox-oauth2-public": None,
}
ACCESS_TOKEN_SECONDS = 2 * 60 * 60  # X's OAuth 2.0 access tokens last two hours
OAUTH2_SCOPES = "tweet.read users.read follows.read dm.read dm.write offline.access"
TOKEN_ROUTE = "/2/oauth2/token"

# (limit, window seconds) per endpoint; send_dm has a per-15-min and a per-24-h cap.
DEFAULT_RATE_LIMITS = {
    "followers": [(300, 900)],
    "send_dm": [(15, 900), (1440, 86400)],
    "dm_events": [(15, 900)],
    "me": [(75, 900)],
    "users_lookup": [(900, 900)],  # GET /2/users?ids=: 900 per 15 minutes per user
}
ENDPOINTS = tuple(DEFAULT_RATE_LIMITS)

MAX_DM_TEXT = 10_000
DM_RETENTION_SECONDS = 30 * 86400
PROBLEMS = "https://api.twitter.com/2/problems/"

TOO_MANY_REQUESTS_BODY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
USAGE_CAPPED_BODY = {
    "title": "UsageCapExceeded",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": PROBLEMS + "usage-capped",
    "period": "Monthly",
    "scope": "Product",
}
UNAUTHORIZED_BODY = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
DM_FORBIDDEN_BODY = {
    "detail": "You are not permitted to send Direct Messages to this user.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
GENERIC_PROBLEMS: dict[int, dict] = {  # default bodies for fail_next
    400: {
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request",
    },
    401: UNAUTHORIZED_BODY,
    403: {"title": "Forbidden", "detail": "Forbidden", "type": "about:blank", "status": 403},
    429: TOO_MANY_REQUESTS_BODY,
    404: {"title": "Not Found Error", "detail": "Sorry, that page does not exist.", "type": PROBLEMS + "resource-not-found", "status": 404},
    500: {"title": "Internal Server Error", "detail": "Internal Server Error", "type": "about:blank", "status": 500},
    503: {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503},
}

USER_FIELDS = (
    "created_at",
    "description",
    "entities",
    "id",
    "location",
    "name",
    "pinned_tweet_id",
    "profile_image_url",
    "protected",
    "public_metrics",
    "url",
    "username",
    "verified",
    "verified_type",
    "withheld",
    "receives_your_dm",
)
DM_EVENT_FIELDS = (
    "id",
    "text",
    "event_type",
    "created_at",
    "dm_conversation_id",
    "sender_id",
    "participant_ids",
    "referenced_tweets",
    "attachments",
)
DM_EVENT_TYPES = ("MessageCreate", "ParticipantsJoin", "ParticipantsLeave")
DEFAULT_USER_KEYS = ("id", "name", "username")
DEFAULT_DM_KEYS = ("id", "event_type", "text")

FOLLOWERS_PARAMS = ("max_results", "pagination_token", "user.fields", "expansions", "tweet.fields")
DM_EVENTS_PARAMS = (
    "dm_event.fields",
    "event_types",
    "expansions",
    "max_results",
    "media.fields",
    "pagination_token",
    "tweet.fields",
    "user.fields",
)
ME_PARAMS = ("user.fields", "expansions", "tweet.fields")
LOOKUP_PARAMS = ("ids", "user.fields", "expansions", "tweet.fields")
LOOKUP_USER_FIELDS = (*USER_FIELDS, "connection_status")
MAX_LOOKUP_IDS = 100
DM_EXPANSIONS = ("attachments.media_keys", "referenced_tweets.id", "sender_id", "participant_ids")

ID_RE = re.compile(r"^[0-9]{1,19}$")


class ApiError(Exception):
    """Raised inside a handler to answer with an X problem body."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("detail") or body.get("title"))
        self.status, self.body = status, body


def invalid_request(param: str, value: str, message: str) -> ApiError:
    return ApiError(
        400,
        {
            "errors": [{"parameters": {param: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": PROBLEMS + "invalid-request",
        },
    )


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def encode_token(kind: str, seq: int) -> str:
    # Opaque like X's tokens, but a cursor: it names the sequence number where the page starts,
    # so followers added at the front between requests do not shift later pages.
    return base64.b32encode(f"{kind}:{seq}".encode()).decode().rstrip("=")


def decode_token(token: str, kinds: tuple[str, ...]) -> tuple[str, int]:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
        kind, seq = raw.split(":")
        if kind in kinds and len(kind) == 2 and seq.isdigit():
            return kind, int(seq)
    except (ValueError, UnicodeDecodeError):
        pass
    raise invalid_request("pagination_token", token, f"The `pagination_token` query parameter value [{token}] is not a valid token.")


def paginate(items: list, seq_of: Callable, token: str | None, max_results: int, family: str):
    """Page newest-first `items` (sorted by strictly descending seq). Returns (page, meta extras)."""

    # Binary search, not a scan: the benchmark pages accounts of a million followers.
    def descending(it) -> int:
        return -seq_of(it)

    if token:
        direction, seq = decode_token(token, (family + "n", family + "p"))
        cut = bisect.bisect_left(items, -seq, key=descending)  # first item with seq <= token's
        if direction.endswith("n"):  # next page: this seq and older
            page = items[cut : cut + max_results]
        else:  # previous page: the max_results items just newer than seq
            page = items[max(0, cut - max_results) : cut]
    else:
        page = items[:max_results]
    meta = {}
    if page:
        older = bisect.bisect_right(items, -seq_of(page[-1]), key=descending)
        if older < len(items):
            meta["next_token"] = encode_token(family + "n", seq_of(items[older]))
        if token and seq_of(items[0]) > seq_of(page[0]):
            meta["previous_token"] = encode_token(family + "p", seq_of(page[0]))
    return page, meta


class _Window:
    """A fixed rate-limit window that starts at the first request after it expires."""

    def __init__(self, limit: int, seconds: int):
        self.limit, self.seconds, self.used = limit, seconds, 0
        self.start: float | None = None

    def roll(self, now: float) -> None:
        if self.start is None or now >= self.start + self.seconds:
            self.start, self.used = now, 0

    def reset_at(self, now: float) -> int:
        return math.ceil((self.start if self.start is not None else now) + self.seconds)


class XSandbox(ActivityMixin, ControlMixin):
    def __init__(
        self,
        *,
        host="127.0.0.1",
        port=0,
        account_id="1000",
        username="courtesy_demo",
        name="Courtesy Demo",
        credentials: dict | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.host, self.port = host, port
        self.account_id = account_id
        self.credentials = dict(credentials or DEFAULT_CREDENTIALS)
        self._clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.latency_seconds = 0.0

        self._users: dict[str, dict] = {}
        self._receives_dm: dict[str, bool] = {}
        self._follow_seq: dict[str, int] = {}  # follower id -> follow order (higher = newer)
        self._follow_order: list[str] = []  # follower ids, oldest first (kept in step with _follow_seq)
        self._followed_at: dict[str, float] = {}  # follower id -> sandbox time of the (latest) follow
        self._billed: dict[str, set[str]] = {}  # UTC day of the sandbox clock -> user ids returned
        self._billed_dm_events: dict[str, set[str]] = {}  # UTC day of the sandbox clock -> DM event ids returned
        self._billed_lookup: dict[str, set[str]] = {}  # UTC day of the sandbox clock -> user ids a lookup returned
        self._suspended: set[str] = set()
        self._followers_count_override: int | None = None
        self._empty_followers = 0  # followers requests still to answer with X's empty page
        self._dm_restriction: dict | None = None  # the 403 body while the account may not send DMs
        self._seq = 0
        self._next_user_id = 2_000_001
        self._next_event_id = 1_860_000_000_000_000_001
        self._events: list[dict] = []  # all MessageCreate events, oldest first
        self._faults: dict[str, list] = {ep: [] for ep in ENDPOINTS}
        self._drops = 0
        self._windows = {ep: [_Window(lim, sec) for lim, sec in v] for ep, v in DEFAULT_RATE_LIMITS.items()}
        self.users_returned = 0
        self.dm_events_returned = 0  # events returned by any dm_events endpoint (each one billed)
        self.lookup_users_returned = 0  # users returned by GET /2/users?ids= (errors not counted)
        self._requests: list[dict] = []
        self._users[account_id] = self._new_user(account_id, username, name, {})
        # OAuth 2.0: registered clients, live tokens, and what the token endpoint was asked.
        self.oauth2_clients: dict[str, str | None] = dict(DEFAULT_OAUTH2_CLIENTS)
        self._access_tokens: dict[str, dict] = {}  # token -> {"client_id", "expires_at"}
        self._refresh_tokens: dict[str, dict] = {}  # token -> {"client_id", "spent"}
        self._token_calls: dict[str, int] = {}  # refresh token -> token-endpoint calls that presented it
        self._token_faults: list = []  # (status, body) or None (take the refresh, drop the answer)
        self._following: dict[str, float] = {}  # users the account follows (follow_user) -> since
        self._init_activity()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> XSandbox:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        if getattr(self, "tls", None) is not None:  # HTTPS with a test CA: sandbox/tls.py
            self.tls.wrap(self._server)
        self.port = self._server.server_address[1]
        # A short poll interval keeps stop() (and so each test) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="x-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_auto_delivery()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> XSandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- clock -------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    # ---- followers ---------------------------------------------------------------------------
    def _new_user(self, user_id, username, name, fields) -> dict:
        user = {
            "id": user_id,
            "name": name,
            "username": username,
            "created_at": "2020-01-01T00:00:00.000Z",
            "description": "",
            "profile_image_url": f"https://pbs.twimg.com/profile_images/{user_id}/normal.jpg",
            "protected": False,
            "verified": False,
            "verified_type": "none",
            # An ordinary person's account by default; tests make spam-like ones explicitly.
            "public_metrics": {"followers_count": 25, "following_count": 80, "tweet_count": 12, "listed_count": 0, "like_count": 3},
        }
        user.update(fields)
        return user

    def _public_user(self, user_id: str) -> dict:
        user = copy.deepcopy(self._users[user_id])
        user["receives_your_dm"] = self._receives_dm.get(user_id, True)
        if user_id == self.account_id:  # the account's own count is its current followers (or the override)
            user["public_metrics"]["followers_count"] = self._followers_count()
        return user

    def _followers_count(self) -> int:
        if self._followers_count_override is not None:
            return self._followers_count_override
        return len(self._follow_order) - sum(1 for u in self._suspended if u in self._follow_seq)

    def set_followers_count_override(self, count: int | None) -> None:
        """Make the account's public_metrics.followers_count say `count` (None: the real count again),
        e.g. X counting followers that the followers endpoint does not list."""
        with self._lock:
            self._followers_count_override = count

    def suspend_user(self, user_id: str) -> None:
        """Suspend a user: gone from the followers list (not unfollowed: unsuspend_user brings them
        back in place), an error entry in a user lookup, and no longer reachable by DM."""
        with self._lock:
            self._require_user(user_id)
            self._suspended.add(str(user_id))

    def unsuspend_user(self, user_id: str) -> None:
        with self._lock:
            self._suspended.discard(str(user_id))

    def add_follower(self, user_id: str | None = None, *, username=None, name=None, receives_dm=True, **fields) -> dict:
        with self._lock:
            user_id = self._upsert_user(user_id, username, name, receives_dm, fields)
            if user_id not in self._follow_seq:  # a (re-)follow goes to the front
                self._follow(user_id)
                self._activity_follow("follow.follow", user_id, self.account_id)
            return self._public_user(user_id)

    def add_user(self, user_id: str | None = None, *, username=None, name=None, receives_dm=True, **fields) -> dict:
        """Create (or update) a user without making them follow the account, e.g. to write to it (receive_dm)."""
        with self._lock:
            return self._public_user(self._upsert_user(user_id, username, name, receives_dm, fields))

    def _upsert_user(self, user_id, username, name, receives_dm, fields) -> str:
        if user_id is None:
            while str(self._next_user_id) in self._users:
                self._next_user_id += 1
            user_id = str(self._next_user_id)
            self._next_user_id += 1
        user_id = str(user_id)
        if user_id in self._users:  # known user: update what was given
            user = self._users[user_id]
            user.update(fields)
            if username is not None:
                user["username"] = username
            if name is not None:
                user["name"] = name
        else:
            username = username or f"user{user_id}"
            self._users[user_id] = self._new_user(user_id, username, name or username, fields)
        self._receives_dm[user_id] = receives_dm
        return user_id

    def user(self, user_id: str) -> dict:
        """A user as X shows them (id, name, username and profile fields)."""
        with self._lock:
            self._require_user(str(user_id))
            return self._public_user(str(user_id))

    def _follow(self, user_id: str) -> None:
        self._seq += 1
        self._follow_seq[user_id] = self._seq
        self._follow_order.append(user_id)  # the newest seq, so the order stays sorted
        self._followed_at[user_id] = self.now()

    def add_followers(self, count: int, *, prefix="fan") -> list[dict]:
        with self._lock:
            out = []
            for _ in range(count):
                n = self._seq + 1
                out.append(self.add_follower(username=f"{prefix}{n}", name=f"{prefix.title()} {n}"))
            return out

    def seed_followers(self, count: int, *, prefix="early") -> None:
        """Add `count` followers fast (no copies returned): accounts of a million for the benchmark."""
        with self._lock:
            for _ in range(count):
                while str(self._next_user_id) in self._users:
                    self._next_user_id += 1
                user_id = str(self._next_user_id)
                self._next_user_id += 1
                n = self._seq + 1
                self._users[user_id] = self._new_user(user_id, f"{prefix}{n}", f"{prefix.title()} {n}", {})
                self._receives_dm[user_id] = True
                self._follow(user_id)

    def remove_follower(self, user_id: str) -> None:
        with self._lock:
            if self._follow_seq.pop(str(user_id), None) is not None:
                self._follow_order.remove(str(user_id))
                self._activity_follow("follow.unfollow", str(user_id), self.account_id)

    def follow_user(self, user_id: str) -> None:
        """The account follows `user_id` (an existing user): a follow.follow event with the account
        as source.  A user lookup then shows "following" in connection_status."""
        with self._lock:
            self._require_user(user_id)
            if str(user_id) not in self._following:
                self._following[str(user_id)] = self.now()
                self._activity_follow("follow.follow", self.account_id, str(user_id))

    def unfollow_user(self, user_id: str) -> None:
        with self._lock:
            if self._following.pop(str(user_id), None) is not None:
                self._activity_follow("follow.unfollow", self.account_id, str(user_id))

    def follower_ids(self) -> list[str]:
        with self._lock:
            return self._follower_ids()

    def _follower_ids(self) -> list[str]:
        if self._suspended:
            return [u for u in reversed(self._follow_order) if u not in self._suspended]
        return self._follow_order[::-1]

    def followed_at(self, user_id: str) -> float | None:
        """Sandbox time at which this user last followed (None if never)."""
        with self._lock:
            return self._followed_at.get(str(user_id))

    def set_receives_dm(self, user_id: str, value: bool) -> None:
        with self._lock:
            self._require_user(user_id)
            self._receives_dm[str(user_id)] = value

    def rename(self, user_id, *, username=None, name=None) -> None:
        with self._lock:
            user = self._require_user(user_id)
            if username is not None:
                user["username"] = username
            if name is not None:
                user["name"] = name

    def _require_user(self, user_id) -> dict:
        if str(user_id) not in self._users:
            raise KeyError(f"unknown user {user_id}")
        return self._users[str(user_id)]

    # ---- DMs --------------------------------------------------------------------------------
    def _store_event(self, sender_id: str, recipient_id: str, text: str) -> dict:
        event_id = str(self._next_event_id)
        self._next_event_id += 1
        now = self.now()
        a, b = sorted((sender_id, recipient_id), key=int)
        event = {
            "dm_event_id": event_id,
            "dm_conversation_id": f"{a}-{b}",
            "sender_id": sender_id,
            "recipient_id": recipient_id,
            "text": text,
            "created_at": iso_time(now),
            "_ts": now,
        }
        self._events.append(event)
        return event

    @staticmethod
    def _record(event: dict) -> dict:
        return {k: v for k, v in event.items() if not k.startswith("_")}

    @property
    def dm_log(self) -> list[dict]:
        """DMs the account sent, oldest first."""
        with self._lock:
            return [self._record(e) for e in self._events if e["sender_id"] == self.account_id]

    @property
    def inbound_dms(self) -> list[dict]:
        """DMs received by the account (see receive_dm), oldest first."""
        with self._lock:
            return [self._record(e) for e in self._events if e["sender_id"] != self.account_id]

    def dms_to(self, user_id: str) -> list[dict]:
        return [d for d in self.dm_log if d["recipient_id"] == str(user_id)]

    def receive_dm(self, sender_id: str, text: str) -> dict:
        """A DM from a user (a follower or not: see add_user) to the account, at the sandbox time."""
        with self._lock:
            self._require_user(sender_id)
            event = self._store_event(str(sender_id), self.account_id, text)
            self._activity_dm(event)
            return self._record(event)

    # ---- OAuth 2.0 ------------------------------------------------------------------------------
    def issue_oauth2_tokens(self, client_id: str = "sandbox-oauth2-confidential") -> dict:
        """What the authorization-code flow would give a client: its credentials secret for Courtesy
        ({client_id, client_secret (confidential clients only), access_token, refresh_token, expires_at})."""
        with self._lock:
            if client_id not in self.oauth2_clients:
                raise KeyError(f"unknown OAuth 2.0 client {client_id}")
            answer = self._issue(client_id)
            secret = {"client_id": client_id}
            if self.oauth2_clients[client_id] is not None:
                secret["client_secret"] = self.oauth2_clients[client_id]
            secret.update(
                access_token=answer["access_token"],
                refresh_token=answer["refresh_token"],
                expires_at=int(self.now()) + answer["expires_in"],
            )
            return secret

    def _issue(self, client_id: str) -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._access_tokens[access] = {"client_id": client_id, "expires_at": self.now() + ACCESS_TOKEN_SECONDS}
        self._refresh_tokens[refresh] = {"client_id": client_id, "spent": False}
        # X's documented answer to a token request.
        return {
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "access_token": access,
            "scope": OAUTH2_SCOPES,
            "refresh_token": refresh,
        }

    def token_calls(self, refresh_token: str | None = None) -> int | dict[str, int]:
        """Token-endpoint calls that presented this refresh token (all of them: a dict)."""
        with self._lock:
            return dict(self._token_calls) if refresh_token is None else self._token_calls.get(refresh_token, 0)

    def refresh_token_live(self, refresh_token: str) -> bool:
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
            return grant is not None and not grant["spent"]

    def fail_next_token_request(self, status: int, *, count: int = 1, body: dict | None = None) -> None:
        """Answer the next `count` token requests with `status` (nothing spent)."""
        with self._lock:
            self._token_faults.extend([(status, body or {"error": "server_error"})] * count)

    def drop_token_answer_next(self, count: int = 1) -> None:
        """Carry out the next `count` refreshes (the old refresh token is spent) but drop the answer."""
        with self._lock:
            self._token_faults.extend([None] * count)

    def _h_token(self, headers, body: bytes):
        """POST /2/oauth2/token: (status, body); body None means drop the connection."""
        if "x-www-form-urlencoded" not in (headers.get("Content-Type") or ""):
            return 400, {"error": "invalid_request", "error_description": "Content-Type must be application/x-www-form-urlencoded"}
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        auth = headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            client_id, client_secret = unquote(client_id), unquote(client_secret)
            expected = self.oauth2_clients.get(client_id)
            if expected is None or not safe_string_equals(expected, client_secret):
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        else:
            client_id = form.get("client_id", "")
            if client_id not in self.oauth2_clients:
                return 401, {"error": "invalid_client", "error_description": "Missing valid authorization header"}
            if self.oauth2_clients[client_id] is not None:  # a confidential client must authenticate
                return 401, {"error": "invalid_client", "error_description": "Missing valid authorization header"}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "Only grant_type=refresh_token is served"}
        refresh = form.get("refresh_token", "")
        if not refresh:
            return 400, {"error": "invalid_request", "error_description": "Missing required parameter [refresh_token]."}
        self._token_calls[refresh] = self._token_calls.get(refresh, 0) + 1
        if self._token_faults and self._token_faults[0] is not None:
            status, fault = self._token_faults.pop(0)
            return status, fault
        grant = self._refresh_tokens.get(refresh)
        if grant is None or grant["spent"] or grant["client_id"] != client_id:
            return 400, {"error": "invalid_grant", "error_description": "Value passed for the token was invalid."}
        grant["spent"] = True  # rotation: the old refresh token never works again
        answer = self._issue(client_id)
        if self._token_faults:  # the refresh happened; the client never hears of it
            self._token_faults.pop(0)
            return 200, None
        return 200, answer

    # ---- records ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._requests)

    def billed_users_per_day(self) -> dict[str, int]:
        """Distinct users the followers endpoint returned per UTC day of the sandbox clock:
        what X bills (a resource read again the same UTC day is billed once)."""
        with self._lock:
            return {day: len(ids) for day, ids in sorted(self._billed.items())}

    def billed_dm_events_per_day(self) -> dict[str, int]:
        """Distinct DM events the dm_events endpoints returned per UTC day of the sandbox clock:
        what X bills for DM event reads, on the same once-a-day rule as users."""
        with self._lock:
            return {day: len(ids) for day, ids in sorted(self._billed_dm_events.items())}

    def billed_lookup_users_per_day(self) -> dict[str, int]:
        """Distinct users GET /2/users?ids= returned per UTC day of the sandbox clock: X bills each
        at $0.010 (a user lookup is never an owned read), once a day.  Separate from
        billed_users_per_day, which is the followers endpoint only."""
        with self._lock:
            return {day: len(ids) for day, ids in sorted(self._billed_lookup.items())}

    def reset_counters(self) -> None:
        with self._lock:
            self.users_returned = 0
            self.dm_events_returned = 0
            self.lookup_users_returned = 0
            self._requests.clear()
            self._billed.clear()
            self._billed_dm_events.clear()
            self._billed_lookup.clear()
            self._reset_activity_counters()

    def _utc_day(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.now()))

    # ---- faults and limits ------------------------------------------------------------------
    def fail_next(self, endpoint: str, status: int, *, count: int = 1, body: dict | str | None = None, headers: dict | None = None) -> None:
        """Answer the next `count` requests to `endpoint` with `status` and store nothing.

        Checked after auth and before rate limiting (an injected failure does not use up the
        limit); the reply carries the current rate-limit headers plus `headers`.
        """
        self._check_endpoint(endpoint)
        if body is None:
            body = GENERIC_PROBLEMS.get(status) or {
                "title": "Error",
                "detail": f"Sandbox injected {status}",
                "type": "about:blank",
                "status": status,
            }
        with self._lock:
            self._faults[endpoint].extend([(status, body, dict(headers or {}))] * count)

    def drop_after_store_next(self, count: int = 1) -> None:
        with self._lock:
            self._drops += count

    def empty_followers_next(self, count: int = 1) -> None:
        """Answer the next `count` valid followers requests with X's empty page, 200
        {"meta": {"result_count": 0}} (no data key, no tokens), whoever follows.

        Like fail_next("followers", 200, body={"meta": {"result_count": 0}}), byte for byte, except
        that this one is served as X serves a real page: it uses up the rate limit (or is a 429
        when none is left) and a bad parameter is still a 400.
        """
        with self._lock:
            self._empty_followers += count

    def restrict_dm_sending(self, detail: str | None = None) -> None:
        """Bar the account from sending DMs (an account-level restriction) until lift_dm_restriction.

        Every well-formed send to an existing user is then a 403 with DM_FORBIDDEN_BODY, the very body
        a recipient who cannot be messaged gets, so status and body cannot tell the two apart (pass
        `detail` to make X's detail differ).  Nothing is stored.  The request is checked after the
        body and the participant (a 400 or 404 still wins) and uses up both send_dm windows: X counts
        every request that reaches the endpoint, 403s included, as the per-recipient 403 does here.
        """
        with self._lock:
            self._dm_restriction = DM_FORBIDDEN_BODY if detail is None else {**DM_FORBIDDEN_BODY, "detail": detail}

    def lift_dm_restriction(self) -> None:
        with self._lock:
            self._dm_restriction = None

    def set_rate_limit(self, endpoint: str, limit: int, window_seconds: int = 900) -> None:
        """Set the window of this length (or the primary one) to `limit`, freshly started."""
        self._check_endpoint(endpoint)
        with self._lock:
            windows = self._windows[endpoint]
            match = [w for w in windows if w.seconds == window_seconds]
            target = match[0] if match else windows[0]
            target.limit, target.seconds, target.start, target.used = limit, window_seconds, None, 0

    def exhaust_rate_limit(self, endpoint: str) -> None:
        self._check_endpoint(endpoint)
        with self._lock:
            window = self._windows[endpoint][0]
            window.roll(self.now())
            window.used = window.limit

    @staticmethod
    def _check_endpoint(endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {endpoint!r}")

    def _rate_headers(self, endpoint: str) -> dict:
        now = self.now()
        headers = {}
        for i, w in enumerate(self._windows[endpoint]):
            prefix = "x-rate-limit" if i == 0 else "x-user-limit-24hour"
            headers[f"{prefix}-limit"] = str(w.limit)
            headers[f"{prefix}-remaining"] = str(max(w.limit - w.used, 0))
            headers[f"{prefix}-reset"] = str(w.reset_at(now))
        return headers

    def _consume(self, endpoint: str) -> bool:
        """Count one request; False (nothing counted) if any window is used up."""
        now = self.now()
        windows = self._windows[endpoint]
        for w in windows:
            w.roll(now)
        if any(w.used >= w.limit for w in windows):
            return False
        for w in windows:
            w.used += 1
        return True

    # ---- request handling (called by the HTTP handler) --------------------------------------
    def _route(self, method: str, path: str):
        """Returns (endpoint, handler, path args) or raises a 404 problem."""
        p = path.rstrip("/")
        routes = [
            ("GET", r"/2/users/me", "me", self._h_me),
            ("GET", r"/2/users", "users_lookup", self._h_users_lookup),
            ("GET", r"/2/users/([^/]+)/followers", "followers", self._h_followers),
            ("POST", r"/2/dm_conversations/with/([^/]+)/messages", "send_dm", self._h_send_dm),
            ("GET", r"/2/dm_events", "dm_events", self._h_dm_events),
            ("GET", r"/2/dm_conversations/with/([^/]+)/dm_events", "dm_events", self._h_dm_with),
            ("GET", r"/2/dm_conversations/([0-9]+-[0-9]+)/dm_events", "dm_events", self._h_dm_conv),
        ]
        for m, pattern, endpoint, fn in routes:
            match = re.fullmatch(pattern, p)
            if match and m == method:
                return endpoint, fn, match.groups()
        raise ApiError(404, GENERIC_PROBLEMS[404])

    def handle(self, method: str, url: str, headers, body: bytes, *, client: str | None = None):
        """Returns (status, headers, body) where body is dict, str, or None for 'drop the connection'.
        `client` is the client's address (the control API answers loopback clients only)."""
        split = urlsplit(url)
        if self.is_control_path(split.path):
            status, payload = self.handle_control(method, url, client, body)
            return status, {}, payload
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if split.path.rstrip("/") == TOKEN_ROUTE:
            if method != "POST":
                raise ApiError(404, GENERIC_PROBLEMS[404])
            with self._lock:
                status, payload = self._h_token(headers, body)
            return status, {"Cache-Control": "no-store"}, payload
        if self.is_activity_path(split.path):
            status, payload = self.handle_activity(method, url, headers, body)
            return status, {}, payload
        endpoint, fn, args = self._route(method, split.path)
        self._authenticate(method, split.path, split.query, headers, body)
        with self._lock:
            if self._faults[endpoint]:
                status, fault_body, extra = self._faults[endpoint].pop(0)
                return status, {**self._rate_headers(endpoint), **extra}, fault_body
            if not self._consume(endpoint):
                return 429, self._rate_headers(endpoint), TOO_MANY_REQUESTS_BODY
            try:
                status, payload = fn(*args, query=query, body=body)
            except ApiError as e:
                status, payload = e.status, e.body
            rate_headers = self._rate_headers(endpoint)
            if endpoint == "send_dm" and status == 201 and self._drops:
                self._drops -= 1
                return status, rate_headers, None
            return status, rate_headers, payload

    def log_request(self, method: str, url: str, status) -> None:
        split = urlsplit(url)
        with self._lock:
            self._requests.append(
                {"method": method, "path": split.path, "status": status, "query": dict(parse_qsl(split.query, keep_blank_values=True))}
            )

    def _authenticate(self, method, path, raw_query, headers, body) -> None:
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self._lock:
                grant = self._access_tokens.get(auth[7:].strip())
                if grant is None or grant["expires_at"] <= self.now():
                    raise ApiError(401, UNAUTHORIZED_BODY)
            return
        if not auth.startswith("OAuth "):
            raise ApiError(401, UNAUTHORIZED_BODY)
        try:
            params = {k: oauth_utils.unescape(v) for k, v in oauth_utils.parse_authorization_header(auth)}
        except (ValueError, TypeError):
            raise ApiError(401, UNAUTHORIZED_BODY) from None
        c = self.credentials
        if (
            params.get("oauth_consumer_key") != c["consumer_key"]
            or params.get("oauth_token") != c["access_token"]
            or params.get("oauth_signature_method") != "HMAC-SHA1"
        ):
            raise ApiError(401, UNAUTHORIZED_BODY)
        # Form bodies are signed too; JSON bodies (what tweepy sends) are not.
        form = body.decode("utf-8", "replace") if "x-www-form-urlencoded" in (headers.get("Content-Type") or "") else None
        collected = oauth_sig.collect_parameters(uri_query=raw_query, body=form, headers={"Authorization": auth})
        normalized = oauth_sig.normalize_parameters(collected)
        for host in (X_HOST, self.base_url):
            base = oauth_sig.signature_base_string(method, oauth_sig.base_string_uri(host + path), normalized)
            expected = oauth_sig.sign_hmac_sha1(base, c["consumer_secret"], c["access_token_secret"])
            if safe_string_equals(expected, params.get("oauth_signature", "")):
                return
        raise ApiError(401, UNAUTHORIZED_BODY)

    # ---- parameter helpers --------------------------------------------------------------------
    @staticmethod
    def _check_params(query: dict, allowed: tuple) -> None:
        for key in query:
            if key not in allowed:
                raise invalid_request(key, query[key], f"The query parameter [{key}] is not one of [{','.join(allowed)}]")

    @staticmethod
    def _fields(query: dict, param: str, allowed: tuple, default: tuple) -> list[str]:
        requested = [f for f in query.get(param, "").split(",") if f]
        for f in requested:
            if f not in allowed:
                raise invalid_request(param, f, f"The `{param}` query parameter value [{f}] is not one of [{','.join(allowed)}]")
        return list(default) + [f for f in requested if f not in default]

    @staticmethod
    def _max_results(query: dict, low: int, high: int, default: int) -> int:
        raw = query.get("max_results")
        if raw is None:
            return default
        if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
            raise invalid_request("max_results", raw, f"The `max_results` query parameter value [{raw}] is not between {low} and {high}")
        return int(raw)

    @staticmethod
    def _check_id(name: str, value: str, kind: str = "path") -> None:
        if not ID_RE.match(value):
            raise invalid_request(name, value, f"The `{name}` {kind} parameter value [{value}] does not match ^[0-9]{{1,19}}$")

    # ---- endpoint handlers: run under the lock, return (status, body) --------------------------
    def _user_view(self, user_id: str, fields: list[str]) -> dict:
        user = self._public_user(user_id)
        return {f: user[f] for f in fields if f in user}

    def _h_me(self, *, query, body):
        self._check_params(query, ME_PARAMS)
        fields = self._fields(query, "user.fields", USER_FIELDS, DEFAULT_USER_KEYS)
        return 200, {"data": self._user_view(self.account_id, fields)}

    def _h_users_lookup(self, *, query, body):
        self._check_params(query, LOOKUP_PARAMS)
        raw = query.get("ids", "")
        values = raw.split(",") if raw else []
        if not 1 <= len(values) <= MAX_LOOKUP_IDS:
            raise invalid_request(
                "ids", raw, f"The number of values in the `ids` query parameter list [{len(values)}] is not between 1 and {MAX_LOOKUP_IDS}"
            )
        for value in values:
            self._check_id("ids", value, "query")
        fields = self._fields(query, "user.fields", LOOKUP_USER_FIELDS, DEFAULT_USER_KEYS)
        data, errors = [], []
        for uid in dict.fromkeys(values):  # each id once, in the order asked
            if uid not in self._users:
                errors.append(self._lookup_error(uid, "Not Found Error", f"Could not find user with ids: [{uid}]."))
            elif uid in self._suspended:
                errors.append(self._lookup_error(uid, "Forbidden", f"User has been suspended: [{uid}]."))
            else:
                user = self._public_user(uid)
                # The account's relations to this user (follow_user makes it follow someone); none is [].
                user["connection_status"] = (["following"] if uid in self._following else []) + (
                    ["followed_by"] if uid in self._follow_seq else []
                )
                data.append({f: user[f] for f in fields if f in user})
        self.lookup_users_returned += len(data)
        self._billed_lookup.setdefault(self._utc_day(), set()).update(u["id"] for u in data)
        out: dict = {}
        if data:
            out["data"] = data
        if errors:
            out["errors"] = errors
        return 200, out

    @staticmethod
    def _lookup_error(user_id: str, title: str, detail: str) -> dict:
        return {
            "value": user_id,
            "detail": detail,
            "title": title,
            "resource_type": "user",
            "parameter": "ids",
            "resource_id": user_id,
            "type": PROBLEMS + "resource-not-found",
        }

    def _h_followers(self, user_id, *, query, body):
        self._check_id("id", user_id)
        self._check_params(query, FOLLOWERS_PARAMS)
        max_results = self._max_results(query, 1, 1000, 100)
        fields = self._fields(query, "user.fields", USER_FIELDS, DEFAULT_USER_KEYS)
        if user_id not in self._users:
            # X answers 200 with an `errors` array for a user that does not exist.
            return 200, {
                "errors": [
                    {
                        "value": user_id,
                        "detail": f"Could not find user with id: [{user_id}].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "id",
                        "resource_id": user_id,
                        "type": PROBLEMS + "resource-not-found",
                    }
                ]
            }
        if self._empty_followers:
            if query.get("pagination_token"):
                decode_token(query["pagination_token"], ("fn", "fp"))  # a garbled token is still a 400
            self._empty_followers -= 1
            return 200, {"meta": {"result_count": 0}}
        ids = self._follower_ids() if user_id == self.account_id else []
        page, meta = paginate(ids, self._follow_seq.__getitem__, query.get("pagination_token"), max_results, "f")
        self.users_returned += len(page)
        self._billed.setdefault(self._utc_day(), set()).update(page)
        out = {"meta": {"result_count": len(page), **meta}}
        if page:
            out = {"data": [self._user_view(uid, fields) for uid in page], **out}
        return 200, out

    def _h_send_dm(self, participant_id, *, query, body):
        self._check_id("participant_id", participant_id)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ApiError(
                400,
                {
                    "errors": [{"message": "Request body is not valid JSON"}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": PROBLEMS + "invalid-request",
                },
            )
        extra = sorted(set(payload) - {"text", "attachments"})
        if extra:
            raise invalid_request(extra[0], str(payload[extra[0]]), f"[{extra[0]}] is not a valid property of the request body")
        text = payload.get("text")
        if payload.get("attachments"):
            raise invalid_request("attachments", "", "Attachments are not supported by the sandbox")
        if not isinstance(text, str) or not text:
            raise invalid_request("text", str(text), "The `text` field must be a non-empty string")
        if len(text) > MAX_DM_TEXT:
            raise invalid_request("text", text[:40] + "…", f"The `text` field must be at most {MAX_DM_TEXT} characters")
        if participant_id not in self._users:
            raise ApiError(
                404,
                {
                    "title": "Not Found Error",
                    "type": PROBLEMS + "resource-not-found",
                    "detail": f"Could not find user with participant_id: [{participant_id}].",
                    "status": 404,
                },
            )
        if self._dm_restriction is not None:  # the account may not send: same answer as a closed recipient
            raise ApiError(403, self._dm_restriction)
        reachable = participant_id in self._follow_seq or self._has_written(participant_id)
        if not reachable or participant_id in self._suspended or not self._receives_dm.get(participant_id, True):
            raise ApiError(403, DM_FORBIDDEN_BODY)
        event = self._store_event(self.account_id, participant_id, text)
        return 201, {"data": {"dm_conversation_id": event["dm_conversation_id"], "dm_event_id": event["dm_event_id"]}}

    def _has_written(self, user_id: str) -> bool:
        # Someone who wrote to the account can be answered although they do not follow it.
        return any(e["sender_id"] == user_id for e in self._events)

    def _dm_lookup(self, query, keep: Callable[[dict], bool], family: str):
        self._check_params(query, DM_EVENTS_PARAMS)
        max_results = self._max_results(query, 1, 100, 100)
        fields = self._fields(query, "dm_event.fields", DM_EVENT_FIELDS, DEFAULT_DM_KEYS)
        types = [t for t in query.get("event_types", "").split(",") if t] or list(DM_EVENT_TYPES)
        for t in types:
            if t not in DM_EVENT_TYPES:
                raise invalid_request(
                    "event_types", t, f"The `event_types` query parameter value [{t}] is not one of [{','.join(DM_EVENT_TYPES)}]"
                )
        cutoff = self.now() - DM_RETENTION_SECONDS
        events = []
        if "MessageCreate" in types:  # the sandbox only has MessageCreate events
            events = [e for e in reversed(self._events) if e["_ts"] >= cutoff and keep(e)]
        page, meta = paginate(events, lambda e: int(e["dm_event_id"]), query.get("pagination_token"), max_results, family)
        self.dm_events_returned += len(page)
        self._billed_dm_events.setdefault(self._utc_day(), set()).update(e["dm_event_id"] for e in page)
        out: dict = {"meta": {"result_count": len(page), **meta}}
        if page:
            out = {"data": [self._event_view(e, fields) for e in page], **out}
            expansions = [x for x in query.get("expansions", "").split(",") if x]
            for x in expansions:
                if x not in DM_EXPANSIONS:
                    raise invalid_request(
                        "expansions", x, f"The `expansions` query parameter value [{x}] is not one of [{','.join(DM_EXPANSIONS)}]"
                    )
            if "sender_id" in expansions:  # the senders' user objects, once each
                user_fields = self._fields(query, "user.fields", USER_FIELDS, DEFAULT_USER_KEYS)
                senders = dict.fromkeys(e["sender_id"] for e in page)
                out["includes"] = {"users": [self._user_view(u, user_fields) for u in senders]}
        return 200, out

    @staticmethod
    def _event_view(event: dict, fields: list[str]) -> dict:
        full = {
            "id": event["dm_event_id"],
            "event_type": "MessageCreate",
            "text": event["text"],
            "sender_id": event["sender_id"],
            "created_at": event["created_at"],
            "dm_conversation_id": event["dm_conversation_id"],
            "participant_ids": [event["sender_id"], event["recipient_id"]],
        }
        return {f: full[f] for f in fields if f in full}

    def _h_dm_events(self, *, query, body):
        return self._dm_lookup(query, lambda e: True, "d")

    def _h_dm_with(self, participant_id, *, query, body):
        self._check_id("participant_id", participant_id)
        return self._dm_lookup(query, lambda e: participant_id in (e["sender_id"], e["recipient_id"]), "c")

    def _h_dm_conv(self, conversation_id, *, query, body):
        return self._dm_lookup(query, lambda e: e["dm_conversation_id"] == conversation_id, "c")


class _Handler(BaseHTTPRequestHandler):
    sandbox: XSandbox
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every reply has Content-Length
    # Headers and body go out as separate writes: without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add 40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    server_version = "XSandbox/1.0"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        sandbox = self.sandbox
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = sandbox.handle(method, self.path, self.headers, body, client=self.client_address[0])
        except ApiError as e:
            status, headers, payload = e.status, {}, e.body
        except Exception:  # never let a bug kill the connection thread silently
            status, headers, payload = 500, {}, GENERIC_PROBLEMS[500]
        if sandbox.latency_seconds:
            time.sleep(sandbox.latency_seconds)
        if payload is None:  # stored, but the client never learns the outcome
            sandbox.log_request(method, self.path, None)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        if not sandbox.is_control_path(urlsplit(self.path).path):  # the records are X API traffic only
            sandbox.log_request(method, self.path, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")
