"""What Courtesy talks about, with no adapter in sight: followers, pages of them, DM events,
a run's summary, and the ledger's time format.

The X adapter (courtesy.x_account) builds these from X's answers; the ledger, the welcome
cycle and the CLI use them without importing tweepy, requests or boto3.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Follower:
    id: str
    username: str
    name: str
    profile: dict[str, Any] = field(default_factory=dict, compare=False)


def follower_from_user(user: dict[str, Any]) -> Follower:
    """A follower from an X user object (followers page, user lookup, follow event): the
    fields other than id, username and name are its profile."""
    profile = {k: v for k, v in user.items() if k not in ("id", "username", "name")}
    return Follower(str(user["id"]), str(user.get("username", "")), str(user.get("name", "")), profile)


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


@dataclass(frozen=True)
class ActivityEvent:
    """One X Activity API event, as a webhook delivers it: {"event_uuid", "event_type",
    "filter": {"user_id"}, "payload", ...}. ``data`` is the whole event object (what is queued)."""

    event_uuid: str  # opaque text: X's can be negative ("-7953..."); never arithmetic
    event_type: str
    user_id: str  # the filter's user: the account
    payload: dict[str, Any]
    data: dict[str, Any]


def opaque_id(value: Any) -> str | None:
    """An id as text (json.loads keeps integers exact; they are kept as their digits)."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def activity_event(item: Any) -> ActivityEvent | None:
    """An event object checked for the envelope's fields, or None if it lacks one."""
    if not isinstance(item, dict):
        return None
    event_uuid, filter_ = opaque_id(item.get("event_uuid")), item.get("filter")
    user_id = opaque_id(filter_.get("user_id")) if isinstance(filter_, dict) else None
    event_type, payload = item.get("event_type"), item.get("payload")
    if event_uuid is None or user_id is None or not isinstance(event_type, str) or not isinstance(payload, dict):
        return None
    return ActivityEvent(event_uuid, event_type, user_id, payload, {**item, "event_uuid": event_uuid})


# Not X's: the event Courtesy queues for itself (Delivery "webhook") to be woken when X's DM
# window resets while followers wait for it (courtesy.welcoming, courtesy.event_worker).
WAKE_UP_EVENT = "courtesy.wake_up"


def wake_up_event(account_id: str, reset_at: float) -> dict[str, Any]:
    """The wake-up for one window's reset; one event_uuid per reset, so a second one is a duplicate."""
    return {
        "event_uuid": f"courtesy-wake-up-{int(reset_at)}",
        "event_type": WAKE_UP_EVENT,
        "filter": {"user_id": account_id},
        "payload": {"reset_at": int(reset_at)},
    }


def follows_account(user: Follower) -> bool:
    """Whether a user from a user lookup follows the account (X's connection_status says followed_by)."""
    status = user.profile.get("connection_status", [])
    return isinstance(status, list) and "followed_by" in status


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time as X and the ledger write it ("...Z"), in UTC; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """A time as the ledger writes it: UTC, microseconds, "Z"; such strings sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def queue_key(now: str, position: int) -> str:
    """Sort key in a queue: runs in time order; within a run, deeper in the newest-first
    list (an older follow) sorts first, so a queue is welcomed oldest first."""
    return f"{now}#{999_999 - position:06d}"


@dataclass
class RunSummary:
    """What one run did, for the log, the metrics, the CLI and the benchmark."""

    run_id: str
    dry_run: bool
    baseline: bool = False
    followers_read: int = 0
    new_followers: int = 0
    welcomed: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    pending: int = 0
    uncertain: int = 0
    uncertain_expired: int = 0
    reconciled_welcomed: int = 0
    reconciled_released: int = 0
    departed: int = 0
    mode: str = "dm"
    dm_events_read: int = 0  # reply mode: inbox events read (each billed)
    replies_due: int = 0  # reply mode: followers who wrote and are owed their welcome
    opted_out: int = 0
    confirmations_sent: int = 0
    rate_limited: bool = False
    scan_complete: bool = True
    # X's followers answer contradicted the ledger (an empty page, or a list that ended
    # without any follower known to be there): nothing of it was recorded.
    scan_doubted: bool = False
    presence_lookups: int = 0  # users looked up to confirm queued followers still follow
    reconciled_checked_once: int = 0  # uncertain sends with one empty lookup: checked again later
    account_refused: bool = False  # sending stopped: X refused the account or app, not recipients
    account_refused_runs: int = 0  # consecutive runs stopped that way
    would_welcome: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def count_skip(self, reason: str, by: int = 1) -> None:
        self.skipped += by
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + by
        if not self.skipped_by_reason[reason]:
            del self.skipped_by_reason[reason]
