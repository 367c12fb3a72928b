"""The sandbox's X Activity API (XAA): webhooks, activity subscriptions, signed deliveries, replay.

Mixed into XSandbox (x_sandbox.py); shares its lock, clock, users and credentials.
Facts and sources: /work/shared/X_API_FACTS.md, "Follows and DMs as events: the X Activity API
(XAA)" and "Webhooks (used by XAA)" (X's docs: x-api/activity/introduction, event-payloads,
x-api/webhooks/introduction, quickstart, x-api/getting-started/pricing; read 2026-12-01).

Served endpoints:

    POST   /2/webhooks               {"url"}: registers, then sends a real CRC GET to the URL
    GET    /2/webhooks
    PUT    /2/webhooks/:id           re-runs the CRC check
    DELETE /2/webhooks/:id           (and the subscriptions that deliver to it)
    POST   /2/webhooks/replay        {"webhook_id", "from_date", "to_date"} (yyyymmddhhmm, UTC, past 24 h)
    POST   /2/activity/subscriptions {"event_type", "filter": {"user_id"}, "tag", "webhook_id"}
    GET    /2/activity/subscriptions
    PUT    /2/activity/subscriptions/:id   (tag or webhook_id only)
    DELETE /2/activity/subscriptions/:id

The webhook endpoints take the app-only bearer token (credentials["bearer_token"]), as X requires;
subscriptions take it too, or user context (OAuth 1.0a / an OAuth 2.0 user token), which dm.received
needs (it is private: X asks for a user token with dm.read).

X requires an https URL without a port, publicly reachable.  The sandbox also accepts
http://127.0.0.1:<port> so that tests can run a receiver locally.

CRC: at registration and on PUT (a failure leaves the webhook invalid), and again by
run_periodic_crc() (which deliver_events() calls first) every 30 minutes of sandbox time once a
valid webhook has not validated for 24 hours: a wrong answer, a redirect or a TLS error invalidates
it at once; anything else (4xx, 5xx, no answer) only once 28 hours have passed without validating.

Events (follow.follow, follow.unfollow, dm.received) are queued when the sandbox's state changes and
POSTed by deliver_events() (deterministic, for tests) or by a background thread
(start_auto_delivery).  Each POST carries x-twitter-webhooks-signature: sha256=<base64
HMAC-SHA256(consumer secret, raw body)>.  Every attempt is recorded in webhook_deliveries.
"""

from __future__ import annotations

import base64
import calendar
import copy
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode, urlsplit

from oauthlib.common import safe_string_equals

# Price per event delivered, deduplicated by event_uuid within 24 hours (X's pricing page,
# x-api/getting-started/pricing, read 2026-12-01; see X_API_FACTS.md).  dm.sent, dm.read and typing
# events are not billed (and not served here).
ACTIVITY_EVENT_PRICES_USD = {"follow.follow": 0.010, "follow.unfollow": 0.010, "dm.received": 0.010}
ACTIVITY_EVENT_TYPES = tuple(ACTIVITY_EVENT_PRICES_USD)
BILLING_DEDUP_SECONDS = 86400
REPLAY_WINDOW_SECONDS = 86400  # replay reaches back at most 24 hours
SUBSCRIPTION_LIMIT = 1500  # self-serve
SUBSCRIPTIONS_RATE = (500, 900)  # 500 requests per 15 minutes
# X documents no number for the app's webhook limit here; the sandbox allows one by default
# (set sandbox.webhook_limit to change it).
DEFAULT_WEBHOOK_LIMIT = 1
CRC_TIMEOUT_SECONDS = 10  # X wants the CRC answer within 10 seconds
# X re-runs the CRC every 30 minutes once a webhook has not validated for 24 hours, and a webhook
# that has not validated for 28 hours becomes invalid (X_API_FACTS.md, "Webhooks").
CRC_DUE_AFTER_SECONDS = 24 * 3600
CRC_RETRY_SECONDS = 30 * 60
CRC_INVALID_AFTER_SECONDS = 28 * 3600
DELIVERY_TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "x-twitter-webhooks-signature"

PROBLEMS = "https://api.twitter.com/2/problems/"
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
NOT_FOUND = {
    "title": "Not Found Error",
    "detail": "Sorry, that page does not exist.",
    "type": PROBLEMS + "resource-not-found",
    "status": 404,
}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}


class ActivityError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("detail") or body.get("title"))
        self.status, self.body = status, body


def _invalid(message: str, code: str | None = None) -> ActivityError:
    """X's 400 problem; `code` (e.g. DuplicateUrlFailed) leads the error's message."""
    return ActivityError(
        400,
        {
            "errors": [{"message": f"{code}: {message}" if code else message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": PROBLEMS + "invalid-request",
        },
    )


def _not_found(kind: str, value: str) -> ActivityError:
    return ActivityError(
        404,
        {
            "title": "Not Found Error",
            "detail": f"Could not find {kind} with id: [{value}].",
            "type": PROBLEMS + "resource-not-found",
            "status": 404,
        },
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """X does not follow a redirect from a webhook URL: it invalidates the webhook."""

    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


_NO_REDIRECTS = urllib.request.build_opener(_NoRedirect)


def signature(secret: str, data: bytes) -> str:
    """sha256=<base64 HMAC-SHA256(secret, data)>: CRC answers and delivery signatures alike."""
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def _parse_minute(name: str, value) -> float:
    if not isinstance(value, str) or len(value) != 12 or not value.isdigit():
        raise _invalid(f"`{name}` must be a UTC timestamp in yyyymmddhhmm format, not {value!r}")
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%d%H%M")))
    except ValueError:
        raise _invalid(f"`{name}` is not a valid date: {value!r}") from None


class ActivityMixin:
    """XAA state and behaviour; XSandbox calls _init_activity() and the _activity_* hooks."""

    def _init_activity(self) -> None:
        self.webhook_limit = DEFAULT_WEBHOOK_LIMIT
        self._webhooks: dict[str, dict] = {}  # id -> {"id", "url", "valid", "created_at", "_ts"}
        self._subscriptions: dict[str, dict] = {}
        self._next_activity_id = 1_146_654_567_674_912_769
        self._outbox: list[dict] = []  # queued deliveries, oldest first
        self._delivery_history: list[dict] = []  # every attempt, with its envelope (for replay)
        self._attempts: list[dict] = []  # webhook_deliveries
        self._activity_billed_at: dict[str, float] = {}  # event_uuid -> when it was last billed
        self._billed_activity: dict[str, dict[str, str]] = {}  # UTC day -> {event_uuid: event_type}
        self._fault_duplicate = 0
        self._fault_delay: list[float] = []
        self._fault_fail: list[int | None] = []
        self._fault_reorder = False
        self._sub_window_start: float | None = None
        self._sub_window_used = 0
        self._delivery_lock = threading.Lock()
        self._auto_stop: threading.Event | None = None
        self._auto_thread: threading.Thread | None = None
        self.crc_requests: list[dict] = []  # {"webhook_id", "url", "valid", "status"} per CRC check

    # ---- ids and users ---------------------------------------------------------------------------
    def _new_activity_id(self) -> str:
        self._next_activity_id += 1
        return str(self._next_activity_id)

    @staticmethod
    def _new_event_uuid() -> str:
        # Opaque; X's may be negative ("-7953119945885597316").
        return str(secrets.randbits(64) - 2**63)

    def _event_user(self, user_id: str) -> dict:
        user = self._public_user(user_id)
        user.pop("receives_your_dm", None)
        return user

    # ---- hooks: XSandbox calls these under its lock when something happens ------------------------
    def _activity_follow(self, event_type: str, source_id: str, target_id: str) -> None:
        subs = [
            s for s in self._subscriptions.values() if s["event_type"] == event_type and s["filter"]["user_id"] in (source_id, target_id)
        ]
        if subs:
            payload = {"source": {"data": self._event_user(source_id)}, "target": {"data": self._event_user(target_id)}}
            for sub in subs:
                self._queue(sub, payload)

    def _activity_dm(self, event: dict) -> None:
        recipient = event["recipient_id"]
        subs = [s for s in self._subscriptions.values() if s["event_type"] == "dm.received" and s["filter"]["user_id"] == recipient]
        if not subs:
            return
        payload = {
            "direct_message_events": [
                {
                    "type": "message_create",
                    "id": event["dm_event_id"],
                    "created_timestamp": str(int(event["_ts"] * 1000)),
                    "message_create": {
                        "target": {"recipient_id": event["recipient_id"]},
                        "sender_id": event["sender_id"],
                        "message_data": {"text": event["text"]},
                    },
                }
            ],
            "users": {uid: self._event_user(uid) for uid in (event["sender_id"], event["recipient_id"])},
        }
        for sub in subs:
            self._queue(sub, payload)

    def _queue(self, sub: dict, payload: dict) -> None:
        envelope = {
            "data": {
                "event_uuid": self._new_event_uuid(),
                "filter": dict(sub["filter"]),
                "event_type": sub["event_type"],
                "tag": sub["tag"],
                "payload": copy.deepcopy(payload),
                "includes": {},
            }
        }
        delay = self._fault_delay.pop(0) if self._fault_delay else 0.0
        self._outbox.append({"envelope": envelope, "webhook_id": sub["webhook_id"], "due": self.now() + delay, "replay": False})

    # ---- faults --------------------------------------------------------------------------------
    def duplicate_next_events(self, count: int = 1) -> None:
        """Deliver each of the next `count` events twice (same event_uuid), as X may."""
        with self._lock:
            self._fault_duplicate += count

    def delay_next_events(self, seconds: float, count: int = 1) -> None:
        """Hold the next `count` events for `seconds` of sandbox time (see advance)."""
        with self._lock:
            self._fault_delay.extend([seconds] * count)

    def reorder_next_delivery(self) -> None:
        """The next deliver_events() sends its batch newest first."""
        with self._lock:
            self._fault_reorder = True

    def fail_next_deliveries(self, count: int = 1, *, status: int | None = None) -> None:
        """The next `count` delivery attempts fail without reaching the receiver: unreachable
        (status None) or as if it answered `status` (e.g. 503).  Recorded as attempted."""
        with self._lock:
            self._fault_fail.extend([status] * count)

    # ---- delivery ---------------------------------------------------------------------------------
    def pending_events(self) -> int:
        with self._lock:
            return len(self._outbox)

    def deliver_events(self) -> list[dict]:
        """POST every due event to its webhook; returns the attempts made (also in webhook_deliveries)."""
        self.run_periodic_crc()
        with self._delivery_lock:
            with self._lock:
                now = self.now()
                due = [item for item in self._outbox if item["due"] <= now]
                self._outbox = [item for item in self._outbox if item["due"] > now]
                if self._fault_reorder and due:
                    due.reverse()
                    self._fault_reorder = False
                batch = []
                for item in due:
                    copies = 1
                    if self._fault_duplicate and not item["replay"]:
                        self._fault_duplicate -= 1
                        copies = 2
                    for n in range(copies):
                        webhook = self._webhooks.get(item["webhook_id"])
                        fault = self._fault_fail.pop(0) if self._fault_fail else "none"
                        batch.append((item, n > 0, dict(webhook) if webhook else None, fault))
                secret = self.credentials["consumer_secret"]
            attempts = []
            for item, duplicate, webhook, fault in batch:
                body = json.dumps(item["envelope"]).encode()
                status, error = None, None
                if webhook is None:
                    error = "webhook deleted"
                elif not webhook["valid"]:
                    error = "webhook invalid"  # X delivers to valid webhooks only
                elif fault != "none":
                    status, error = fault, "injected failure"
                else:
                    status, error = self._post(webhook["url"], body, signature(secret, body))
                data = item["envelope"]["data"]
                attempts.append(
                    {
                        "event_uuid": data["event_uuid"],
                        "event_type": data["event_type"],
                        "webhook_id": item["webhook_id"],
                        "status": status,
                        "error": error,
                        "replay": item["replay"],
                        "duplicate": duplicate,
                        "_item": item,
                    }
                )
            with self._lock:
                now = self.now()
                out = []
                for a in attempts:
                    item = a.pop("_item")
                    a["at"] = now
                    self._attempts.append(a)
                    if a["error"] not in ("webhook deleted", "webhook invalid"):
                        self._delivery_history.append({"at": now, "webhook_id": a["webhook_id"], "envelope": item["envelope"]})
                    if a["status"] is not None and 200 <= a["status"] < 300:
                        self._bill_activity(a["event_uuid"], a["event_type"], now)
                    out.append(dict(a))
                return out

    @staticmethod
    def _post(url: str, body: bytes, sig: str) -> tuple[int | None, str | None]:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sig}
        # http(s) only: checked at registration.
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:  # noqa: S310
                response.read()
                return response.status, None
        except urllib.error.HTTPError as e:
            return e.code, None
        except (OSError, ValueError) as e:
            return None, f"unreachable: {e}"

    def _bill_activity(self, event_uuid: str, event_type: str, now: float) -> None:
        last = self._activity_billed_at.get(event_uuid)
        if last is not None and now - last < BILLING_DEDUP_SECONDS:
            return
        self._activity_billed_at[event_uuid] = now
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        self._billed_activity.setdefault(day, {})[event_uuid] = event_type

    def start_auto_delivery(self, interval: float = 0.05) -> None:
        """Deliver due events from a background thread every `interval` seconds (until stop())."""
        if self._auto_thread is not None:
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                self.deliver_events()

        self._auto_stop = stop
        self._auto_thread = threading.Thread(target=run, name="x-sandbox-webhooks", daemon=True)
        self._auto_thread.start()

    def stop_auto_delivery(self) -> None:
        if self._auto_thread is not None:
            self._auto_stop.set()
            self._auto_thread.join(timeout=5)
            self._auto_thread = self._auto_stop = None

    # ---- records ------------------------------------------------------------------------------------
    @property
    def webhook_deliveries(self) -> list[dict]:
        """Every delivery attempt, oldest first: event_uuid, event_type, webhook_id, status (the
        receiver's HTTP status, None if nothing answered), error, replay, duplicate, at."""
        with self._lock:
            return [dict(a) for a in self._attempts]

    def webhooks(self) -> list[dict]:
        with self._lock:
            return [self._webhook_view(w) for w in self._webhooks.values()]

    def billed_activity_events_per_day(self) -> dict[str, int]:
        """Distinct event_uuids delivered (receiver answered 2xx) per UTC day of the sandbox clock,
        each billed once within 24 hours: what X bills for XAA events."""
        with self._lock:
            return {day: len(ids) for day, ids in sorted(self._billed_activity.items())}

    def activity_cost_usd(self) -> float:
        with self._lock:
            return round(sum(ACTIVITY_EVENT_PRICES_USD[t] for ids in self._billed_activity.values() for t in ids.values()), 6)

    def _reset_activity_counters(self) -> None:
        self._attempts.clear()
        self._billed_activity.clear()
        self._activity_billed_at.clear()
        self.crc_requests.clear()

    # ---- CRC ----------------------------------------------------------------------------------------
    def _crc_check(self, url: str) -> tuple[bool, int | None, bool]:
        """(valid, the HTTP status or None, whether a failure is transient as X counts it)."""
        token = secrets.token_urlsafe(32)
        sep = "&" if urlsplit(url).query else "?"
        expected = signature(self.credentials["consumer_secret"], token.encode())
        try:
            with _NO_REDIRECTS.open(url + sep + urlencode({"crc_token": token}), timeout=CRC_TIMEOUT_SECONDS) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            return False, e.code, not 300 <= e.code < 400  # a redirect invalidates at once
        except ssl.SSLError:
            return False, None, False  # so does a TLS error
        except (OSError, ValueError):
            return False, None, True  # no answer, a timeout: transient
        try:
            answer = json.loads(raw).get("response_token", "")
        except (ValueError, AttributeError):
            return False, status, False
        valid = status == 200 and isinstance(answer, str) and safe_string_equals(answer, expected)
        return valid, status, False

    def _run_crc(self, webhook_id: str, url: str, *, periodic: bool = False) -> bool:
        valid, status, transient = self._crc_check(url)  # outside the lock: the receiver may be slow
        with self._lock:
            now = self.now()
            self.crc_requests.append({"webhook_id": webhook_id, "url": url, "valid": valid, "status": status, "periodic": periodic})
            webhook = self._webhooks.get(webhook_id)
            if webhook is not None:
                webhook["_crc_at"] = now
                if valid:
                    webhook["valid"], webhook["_validated_at"] = True, now
                elif not periodic or not transient or now - webhook["_validated_at"] >= CRC_INVALID_AFTER_SECONDS:
                    webhook["valid"] = False
                return bool(webhook["valid"])
        return valid

    def run_periodic_crc(self) -> list[dict]:
        """X's periodic check: a valid webhook not validated for 24 hours is checked again, every
        30 minutes until it answers. Returns the checks made (also in crc_requests)."""
        with self._lock:
            now = self.now()
            due = [
                (w["id"], w["url"])
                for w in self._webhooks.values()
                if w["valid"] and now - w["_validated_at"] >= CRC_DUE_AFTER_SECONDS and now - w["_crc_at"] >= CRC_RETRY_SECONDS
            ]
            before = len(self.crc_requests)
        for webhook_id, url in due:
            self._run_crc(webhook_id, url, periodic=True)
        with self._lock:
            return [dict(r) for r in self.crc_requests[before:]]

    # ---- HTTP ---------------------------------------------------------------------------------------
    @staticmethod
    def is_activity_path(path: str) -> bool:
        p = path.rstrip("/")
        return p == "/2/webhooks" or p.startswith(("/2/webhooks/", "/2/activity/"))

    def handle_activity(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        parts = urlsplit(path).path.rstrip("/").split("/")[2:]  # after "/2"
        try:
            if parts[0] == "webhooks":
                self._authenticate_app(headers)
                if parts == ["webhooks"] and method == "POST":
                    return self._h_webhook_create(body)
                if parts == ["webhooks"] and method == "GET":
                    with self._lock:
                        data = [self._webhook_view(w) for w in self._webhooks.values()]
                    return 200, ({"data": data, "meta": {"result_count": len(data)}} if data else {"meta": {"result_count": 0}})
                if parts == ["webhooks", "replay"] and method == "POST":
                    return self._h_replay(body)
                if len(parts) == 2 and method == "PUT":
                    return self._h_webhook_recheck(parts[1])
                if len(parts) == 2 and method == "DELETE":
                    return self._h_webhook_delete(parts[1])
            elif parts[:2] == ["activity", "subscriptions"] and len(parts) <= 3:
                user_context = self._authenticate_any(method, path, headers, body)
                with self._lock:
                    if not self._consume_subscription_request():
                        return 429, TOO_MANY
                    if len(parts) == 2 and method == "POST":
                        return self._h_subscription_create(body, user_context)
                    if len(parts) == 2 and method == "GET":
                        data = [dict(s) for s in self._subscriptions.values()]
                        return 200, ({"data": data, "meta": {"result_count": len(data)}} if data else {"meta": {"result_count": 0}})
                    if len(parts) == 3 and method == "PUT":
                        return self._h_subscription_update(parts[2], body)
                    if len(parts) == 3 and method == "DELETE":
                        if self._subscriptions.pop(parts[2], None) is None:
                            raise _not_found("subscription", parts[2])
                        return 200, {"data": {"deleted": True}}
            return 404, NOT_FOUND
        except ActivityError as e:
            return e.status, e.body

    def _authenticate_app(self, headers) -> None:
        auth = headers.get("Authorization") or ""
        token = self.credentials.get("bearer_token")
        if not token or not auth.startswith("Bearer ") or not safe_string_equals(auth[7:].strip(), token):
            raise ActivityError(401, UNAUTHORIZED)

    def _authenticate_any(self, method, path, headers, body) -> bool:
        """App-only bearer (False) or user context (True)."""
        try:
            self._authenticate_app(headers)
            return False
        except ActivityError:
            pass
        split = urlsplit(path)
        try:
            self._authenticate(method, split.path, split.query, headers, body)
        except Exception:
            raise ActivityError(401, UNAUTHORIZED) from None
        return True

    def _consume_subscription_request(self) -> bool:
        limit, seconds = SUBSCRIPTIONS_RATE
        now = self.now()
        if self._sub_window_start is None or now >= self._sub_window_start + seconds:
            self._sub_window_start, self._sub_window_used = now, 0
        if self._sub_window_used >= limit:
            return False
        self._sub_window_used += 1
        return True

    @staticmethod
    def _json_body(body: bytes) -> dict:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise _invalid("Request body is not valid JSON")
        return payload

    @staticmethod
    def _webhook_view(w: dict) -> dict:
        return {k: w[k] for k in ("id", "url", "valid", "created_at")}

    def _h_webhook_create(self, body: bytes) -> tuple[int, dict]:
        url = self._json_body(body).get("url")
        # X requires https, no port, publicly reachable; locally http://127.0.0.1:<port> is accepted too.
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise _invalid(f"`url` must be an https URL, not {url!r}", "UrlValidationFailed")
        with self._lock:
            if any(w["url"] == url for w in self._webhooks.values()):
                raise _invalid(f"A webhook with url {url} already exists", "DuplicateUrlFailed")
            if len(self._webhooks) >= self.webhook_limit:
                raise _invalid(f"The app may have at most {self.webhook_limit} webhook(s)", "WebhookLimitExceeded")
            webhook_id = self._new_activity_id()
            now = self.now()
            self._webhooks[webhook_id] = {
                "id": webhook_id,
                "url": url,
                "valid": False,
                "created_at": _iso(now),
                "_ts": now,
                "_validated_at": now,
                "_crc_at": now,
            }
        self._run_crc(webhook_id, url)
        with self._lock:
            webhook = self._webhooks.get(webhook_id)
            return 200, {"data": self._webhook_view(webhook)} if webhook else NOT_FOUND

    def _h_webhook_recheck(self, webhook_id: str) -> tuple[int, dict]:
        with self._lock:
            if webhook_id not in self._webhooks:
                raise _not_found("webhook", webhook_id)
            url = self._webhooks[webhook_id]["url"]
        return 200, {"data": {"valid": self._run_crc(webhook_id, url)}}

    def _h_webhook_delete(self, webhook_id: str) -> tuple[int, dict]:
        with self._lock:
            if self._webhooks.pop(webhook_id, None) is None:
                raise _not_found("webhook", webhook_id)
            for sid in [s for s, sub in self._subscriptions.items() if sub["webhook_id"] == webhook_id]:
                del self._subscriptions[sid]
            return 200, {"data": {"deleted": True}}

    def _h_replay(self, body: bytes) -> tuple[int, dict]:
        payload = self._json_body(body)
        webhook_id = payload.get("webhook_id")
        start = _parse_minute("from_date", payload.get("from_date"))
        end = _parse_minute("to_date", payload.get("to_date")) + 60  # the whole to_date minute
        with self._lock:
            now = self.now()
            if not isinstance(webhook_id, str) or webhook_id not in self._webhooks:
                raise _not_found("webhook", str(webhook_id))
            if start > end - 60:
                raise _invalid("`from_date` must not be after `to_date`")
            if start < (now - REPLAY_WINDOW_SECONDS) // 60 * 60:
                raise _invalid("`from_date` must be within the past 24 hours")
            if end - 60 > now:
                raise _invalid("`to_date` must not be in the future")
            seen: set[str] = set()
            for h in self._delivery_history:
                uuid = h["envelope"]["data"]["event_uuid"]
                if h["webhook_id"] == webhook_id and start <= h["at"] < end and uuid not in seen:
                    seen.add(uuid)
                    self._outbox.append({"envelope": h["envelope"], "webhook_id": webhook_id, "due": now, "replay": True})
            return 200, {"created_at": _iso(now), "job_id": self._new_activity_id()}

    def _h_subscription_create(self, body: bytes, user_context: bool) -> tuple[int, dict]:
        payload = self._json_body(body)
        extra = sorted(set(payload) - {"event_type", "filter", "tag", "webhook_id"})
        if extra:
            raise _invalid(f"[{extra[0]}] is not a valid property of the request body")
        event_type, filt, tag, webhook_id = (payload.get(k) for k in ("event_type", "filter", "tag", "webhook_id"))
        if event_type not in ACTIVITY_EVENT_TYPES:
            raise _invalid(f"`event_type` must be one of [{','.join(ACTIVITY_EVENT_TYPES)}], not {event_type!r}")
        user_id = filt.get("user_id") if isinstance(filt, dict) else None
        if not isinstance(user_id, str) or user_id not in self._users:
            raise _invalid(f"`filter.user_id` must name a user, not {user_id!r}")
        if tag is not None and not isinstance(tag, str):
            raise _invalid("`tag` must be a string")
        if webhook_id not in self._webhooks:
            raise _invalid(f"`webhook_id` must name a webhook of the app, not {webhook_id!r}")
        if event_type == "dm.received" and (not user_context or user_id != self.account_id):
            # Private events: only the user's own token may subscribe to them.
            detail = "dm.received needs the user's own user-context token"
            raise ActivityError(403, {"title": "Forbidden", "detail": detail, "type": "about:blank", "status": 403})
        for s in self._subscriptions.values():
            if (s["event_type"], s["filter"]["user_id"], s["webhook_id"]) == (event_type, user_id, webhook_id):
                raise _invalid("This subscription already exists", "DuplicateSubscription")
        if len(self._subscriptions) >= SUBSCRIPTION_LIMIT:
            raise _invalid(f"At most {SUBSCRIPTION_LIMIT} subscriptions", "SubscriptionLimitExceeded")
        now = _iso(self.now())
        sub = {
            "subscription_id": self._new_activity_id(),
            "event_type": event_type,
            "filter": {"user_id": user_id},
            "tag": tag or "",
            "webhook_id": webhook_id,
            "created_at": now,
            "updated_at": now,
        }
        self._subscriptions[sub["subscription_id"]] = sub
        return 200, {"data": dict(sub)}

    def _h_subscription_update(self, subscription_id: str, body: bytes) -> tuple[int, dict]:
        sub = self._subscriptions.get(subscription_id)
        if sub is None:
            raise _not_found("subscription", subscription_id)
        payload = self._json_body(body)
        extra = sorted(set(payload) - {"tag", "webhook_id"})
        if extra:
            raise _invalid(f"Only tag and webhook_id can change, not [{extra[0]}]")
        if "webhook_id" in payload and payload["webhook_id"] not in self._webhooks:
            raise _invalid(f"`webhook_id` must name a webhook of the app, not {payload['webhook_id']!r}")
        sub.update(payload)
        sub["updated_at"] = _iso(self.now())
        return 200, {"data": dict(sub)}
