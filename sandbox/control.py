"""The sandbox's local control API: drive a running sandbox by hand (python -m sandbox follow|unfollow|write|dms).

Mixed into XSandbox (x_sandbox.py); shares its lock, users and DMs.  Never part of the X API
surface: it lives under /_sandbox/ (X has no such path), takes no credentials, and answers
loopback clients only (anyone else gets 403, whatever the path).

Served endpoints (JSON in, JSON out):

    POST /_sandbox/follow    {"username"?, "name"?}: that user (re-)follows the account, or a new
                             account does (a known username is that user following again)
    POST /_sandbox/unfollow  {"user": "<id>" | "@<username>"}
    POST /_sandbox/write     {"user": "<id>" | "@<username>", "text"}: they DM the account ("stop" is
                             just text)
    GET  /_sandbox/dms       the DMs the account sent, newest last

Each change goes through XSandbox's own methods (add_follower, remove_follower, receive_dm), so the
Activity API queues its webhook events exactly as for any other follow, unfollow or DM.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

CONTROL_PREFIX = "/_sandbox/"
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")  # X's rule for usernames
MAX_TEXT = 10_000  # X's DM text limit (x_sandbox.MAX_DM_TEXT)

FORBIDDEN = {"title": "Forbidden", "detail": "The sandbox's control API answers loopback clients only.", "status": 403}


def _problem(status: int, title: str, detail: str) -> tuple[int, dict]:
    return status, {"title": title, "detail": detail, "status": status}


def is_loopback(address: str | None) -> bool:
    """True for a loopback client address (127.0.0.0/8, ::1, or IPv4-mapped ::ffff:127.x)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class _Bad(Exception):
    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.answer = _problem(status, title, detail)


class ControlMixin:
    """The control endpoints; XSandbox.handle routes /_sandbox/ paths here with the client's address."""

    @staticmethod
    def is_control_path(path: str) -> bool:
        return (path.rstrip("/") + "/").startswith(CONTROL_PREFIX)

    def handle_control(self, method: str, url: str, client: str | None, body: bytes) -> tuple[int, dict]:
        if not is_loopback(client):
            return 403, FORBIDDEN
        action = urlsplit(url).path.rstrip("/")[len(CONTROL_PREFIX) :]
        routes = {
            ("POST", "follow"): self._c_follow,
            ("POST", "unfollow"): self._c_unfollow,
            ("POST", "write"): self._c_write,
            ("GET", "dms"): self._c_dms,
        }
        fn = routes.get((method, action))
        if fn is None:
            return _problem(404, "Not Found", f"No control endpoint {method} {CONTROL_PREFIX}{action} (follow, unfollow, write, dms).")
        try:
            payload = self._control_json(body) if method == "POST" else {}
            with self._lock:
                return fn(payload)
        except _Bad as e:
            return e.answer

    @staticmethod
    def _control_json(body: bytes) -> dict:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise _Bad(400, "Invalid Request", "The body must be a JSON object.")
        return payload

    @staticmethod
    def _string(payload: dict, key: str, *, required: bool) -> str | None:
        value = payload.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _Bad(400, "Invalid Request", f"`{key}` must be a non-empty string.")
        return value

    def _user_by_username(self, username: str) -> str | None:
        wanted = username.lstrip("@").lower()  # X usernames are case-insensitive
        for uid, user in self._users.items():
            if user["username"].lower() == wanted:
                return uid
        return None

    def _resolve(self, ref: str) -> str:
        """A user id from "<id>" or "@<username>" (a bare name that is no user id is a username too)."""
        ref = ref.strip()
        uid = ref if not ref.startswith("@") and ref in self._users else self._user_by_username(ref)
        if uid is None:
            raise _Bad(404, "Not Found", f"No user {ref}.")
        if uid == self.account_id:
            raise _Bad(400, "Invalid Request", f"{ref} is the account itself.")
        return uid

    def _c_follow(self, payload: dict) -> tuple[int, dict]:
        username = self._string(payload, "username", required=False)
        name = self._string(payload, "name", required=False)
        if username is not None:
            username = username.strip().lstrip("@")
            if not USERNAME_RE.match(username):
                raise _Bad(400, "Invalid Request", f"`username` must be 1 to 15 letters, digits or _, not {username!r}.")
            uid = self._user_by_username(username)
            if uid == self.account_id:
                raise _Bad(400, "Invalid Request", f"@{username} is the account itself.")
            if uid is not None:  # someone known (who left, say) follows again
                already = uid in self._follow_seq
                user = self.add_follower(uid, name=name, receives_dm=self._receives_dm.get(uid, True))
                return (200 if already else 201), {"data": user, "followed": not already}
        else:  # a new account, named like add_followers' fans
            n = self._seq + 1
            if self._user_by_username(f"fan{n}") is None:
                username, name = f"fan{n}", name or f"Fan {n}"
        return 201, {"data": self.add_follower(username=username, name=name), "followed": True}

    def _c_unfollow(self, payload: dict) -> tuple[int, dict]:
        uid = self._resolve(self._string(payload, "user", required=True) or "")
        was = uid in self._follow_seq
        self.remove_follower(uid)
        return 200, {"data": self._public_user(uid), "unfollowed": was}

    def _c_write(self, payload: dict) -> tuple[int, dict]:
        uid = self._resolve(self._string(payload, "user", required=True) or "")
        text = payload.get("text")
        if not isinstance(text, str) or not text:
            raise _Bad(400, "Invalid Request", "`text` must be a non-empty string.")
        if len(text) > MAX_TEXT:
            raise _Bad(400, "Invalid Request", f"`text` must be at most {MAX_TEXT} characters.")
        event = self.receive_dm(uid, text)
        return 201, {"data": {**event, "sender_username": self._users[uid]["username"]}}

    def _c_dms(self, payload: dict) -> tuple[int, dict]:
        data = [
            {
                "id": dm["dm_event_id"],
                "recipient_id": dm["recipient_id"],
                "recipient_username": self._users[dm["recipient_id"]]["username"],
                "text": dm["text"],
                "created_at": dm["created_at"],
            }
            for dm in self.dm_log
        ]
        return 200, {"data": data, "meta": {"result_count": len(data)}}
