"""Whether queued followers still follow, asked just before their welcome.

Those met in this run's pages of the followers list need no question; the others are
asked about in one batched user lookup (billed per user). Someone X shows as not
following (or no longer there) has left: marked departed, never messaged; if they follow
again, a scan queues them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from courtesy.domain import Follower, follows_account, iso
from courtesy.errors import RateLimited, UnexpectedAnswer, XUnavailable
from courtesy.ledger import Entry, Ledger
from courtesy.observability import logger
from courtesy.policy import is_message_sender

if TYPE_CHECKING:
    from courtesy.x_account import XAccount


@dataclass
class PresenceResult:
    confirmed: list[Entry] = field(default_factory=list)  # the entries to welcome, in their order
    current: dict[str, Follower] = field(default_factory=dict)  # those looked up, as X shows them now
    departed: int = 0  # marked departed
    looked_up: int = 0  # users looked up (billed)
    notes: list[str] = field(default_factory=list)


def confirm_following(
    entries: list[Entry], *, present: Mapping[str, Follower], x: XAccount, ledger: Ledger, now: Callable[[], datetime]
) -> PresenceResult:
    """The entries X confirms still follow the account (``present``: the followers met in
    this run's pages). Message senders are not followers: never asked about."""
    result = PresenceResult()
    ask = [e.follower_id for e in entries if e.follower_id not in present and not is_message_sender(e.via)]
    if ask:
        if spent := x.users_lookup_spent():
            result.notes.append(f"{len(ask)} queued followers wait: {spent}")
            result.confirmed = [e for e in entries if e.follower_id not in ask]
            return result
        try:
            users = x.lookup_users(ask)
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            result.notes.append(f"{len(ask)} queued followers wait: presence lookup stopped: {exc}")
            result.confirmed = [e for e in entries if e.follower_id not in ask]
            return result
        result.looked_up += len(ask)
        for follower_id in ask:
            user = users.get(follower_id)
            if user is not None and follows_account(user):
                result.current[follower_id] = user
            elif ledger.move("mark_departed", follower_id, fields={"departed_at": iso(now())}):
                result.departed += 1
                logger.info("Follower left before their welcome", extra={"follower_id": follower_id})
    current = result.current
    result.confirmed = [e for e in entries if is_message_sender(e.via) or e.follower_id in present or e.follower_id in current]
    return result
