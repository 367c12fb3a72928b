"""Hand-written stand-ins for the two adapters, with the same methods and no network."""

from __future__ import annotations

from collections.abc import Iterable

from courtesy.errors import CourtesyError, RateLimited, SendOutcomeUnknown
from courtesy.ledger import EXPIRED_UNCERTAIN_QUEUE, Entry, Known, Meta, State
from courtesy.x_account import Follower, FollowersPage


class FakeX:
    """An account whose followers are a newest-first list; records every DM it accepts."""

    def __init__(self, followers: int = 0):
        self.followers: list[Follower] = []
        self.sent: list[tuple[str, str]] = []
        self.users_returned = 0
        self.page_sizes: list[int] = []
        self.send_errors: dict[str, CourtesyError] = {}  # follower id -> error raised on send
        self.page_error: CourtesyError | None = None
        self.spent: RateLimited | None = None
        self.lose_answer_to: set[str] = set()  # follower ids whose DM is stored but the answer lost
        self.lookups = 0
        self.users_looked_up: list[str] = []
        self.follow(followers)

    def follow(self, count: int) -> list[Follower]:
        start = len(self.followers) + len(self.sent) + 1000
        new = [Follower(str(start + i), f"fan{start + i}", f"Fan {start + i}") for i in range(count)]
        for follower in new:
            self.followers.insert(0, follower)
        return new

    def account_id(self) -> str:
        return "1"

    def followers_page(self, account_id: str, *, max_results: int, token: str | None = None) -> FollowersPage:
        if self.page_error:
            raise self.page_error
        self.page_sizes.append(max_results)
        start = int(token or 0)
        page = self.followers[start : start + max_results]
        self.users_returned += len(page)
        more = start + max_results < len(self.followers)
        return FollowersPage(page, str(start + max_results) if more else None)

    def followers_count(self) -> int:
        return len(self.followers)

    def users_lookup_spent(self) -> RateLimited | None:
        return None

    def lookup_users(self, ids) -> dict[str, Follower | None]:
        """Each id as X shows it now: following the account ("followed_by") or not."""
        ids = list(dict.fromkeys(ids))
        self.users_looked_up += ids
        following = {f.id: f for f in self.followers}
        out: dict[str, Follower | None] = {}
        for i in ids:
            f = following.get(i)
            out[i] = Follower(f.id, f.username, f.name, {**f.profile, "connection_status": ["followed_by"]}) if f else None
        return out

    def dm_sends_spent(self) -> RateLimited | None:
        return self.spent

    def send_dm(self, recipient_id: str, text: str) -> str:
        if recipient_id in self.send_errors:
            raise self.send_errors.pop(recipient_id)
        self.sent.append((recipient_id, text))
        if recipient_id in self.lose_answer_to:
            self.lose_answer_to.discard(recipient_id)
            raise SendOutcomeUnknown("stored, but the answer was lost")
        return f"dm-{len(self.sent)}"

    def find_sent_dm(self, account_id: str, participant_id: str, *, since) -> str | None:
        self.lookups += 1
        found = [i for i, (recipient, _) in enumerate(self.sent) if recipient == participant_id]
        return f"dm-{found[-1] + 1}" if found else None

    def dms_to(self, follower_id: str) -> list[str]:
        return [text for recipient, text in self.sent if recipient == follower_id]


class FakeLedger:
    """The ledger's rules (conditional transitions, oldest-first queue) over a dict."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.meta: Meta | None = None
        self.reads = self.writes = 0
        self.batch_gets = 0

    def load_meta(self) -> Meta | None:
        return None if self.meta is None else Meta(**vars(self.meta))

    def save_meta(self, meta: Meta) -> None:
        self.meta = Meta(**vars(meta))

    def save_daily_count(self, day: str, count: int) -> None:
        self.daily = (day, count)

    def known(self, ids: Iterable[str]) -> dict[str, Known]:
        ids = list(ids)
        self.batch_gets += (len(ids) + 99) // 100
        return {i: Known(self.items[i]["state"], self.items[i].get("asked_at", "")) for i in ids if i in self.items}

    def record_baseline(self, followers, now: str) -> int:
        added = 0
        for f in followers:
            if f.id not in self.items:
                self.items[f.id] = {"state": State.BASELINE, "username": f.username, "name": f.name}
                added += 1
        return added

    def record_skipped(self, f, *, reason: str, now: str) -> bool:
        if f.id in self.items:
            return False
        self.items[f.id] = {"state": State.SKIPPED, "username": f.username, "name": f.name, "reason": reason}
        return True

    def skip_pending(self, follower_id, *, reason, now) -> bool:
        return self._move(follower_id, State.PENDING, State.SKIPPED, reason=reason)

    def queue_new(self, f, *, queued_at: str, now: str, notable: bool = False, queue=State.PENDING) -> bool:
        if f.id in self.items:
            return False
        self.items[f.id] = {
            **({} if queue == State.PENDING else {"queue": queue}),
            "notable": notable,
            "state": State.PENDING,
            "username": f.username,
            "name": f.name,
            "queued_at": queued_at,
        }
        return True

    def queued(self, state: str, limit: int | None = None) -> list[Entry]:
        rows = sorted((v["queued_at"], k) for k, v in self.items.items() if v.get("queue", v["state"]) == state and "queued_at" in v)
        rows = rows[:limit] if limit is not None else rows
        return [
            Entry(
                k,
                self.items[k]["state"],
                self.items[k]["username"],
                self.items[k]["name"],
                q,
                self.items[k].get("claimed_at", ""),
                empty_lookup_at=self.items[k].get("empty_lookup_at", ""),
            )
            for q, k in rows
        ]

    def count_queued(self, state: str) -> int:
        return len(self.queued(state))

    def _move(self, follower_id: str, expected: str, new: str, owner: str | None = None, **fields) -> bool:
        item = self.items.get(follower_id)
        if item is None or item["state"] != expected:
            return False
        if owner is not None and item.get("run_id") != owner:
            return False
        item.pop("queue", None)
        item.update(state=new, **fields)
        return True

    def claim(self, follower_id, *, run_id, template_id, now) -> bool:
        return self._move(follower_id, State.PENDING, State.SENDING, None, run_id=run_id, template_id=template_id, claimed_at=now)

    def mark_welcomed(self, follower_id, *, run_id, dm_event_id, now) -> bool:
        return self._move(follower_id, State.SENDING, State.WELCOMED, run_id, dm_event_id=dm_event_id)

    def mark_undeliverable(self, follower_id, *, run_id, detail, now) -> bool:
        return self._move(follower_id, State.SENDING, State.UNDELIVERABLE, run_id, detail=detail)

    def mark_failed(self, follower_id, *, run_id, detail, now) -> bool:
        return self._move(follower_id, State.SENDING, State.FAILED, run_id, detail=detail)

    def mark_uncertain(self, follower_id, *, detail, now, run_id=None) -> bool:
        return self._move(follower_id, State.SENDING, State.UNCERTAIN, run_id, detail=detail)

    def release(self, follower_id, *, run_id, detail) -> bool:
        return self._move(follower_id, State.SENDING, State.PENDING, run_id, detail=detail)

    def confirm_uncertain(self, follower_id, *, dm_event_id, now) -> bool:
        return self._move(follower_id, State.UNCERTAIN, State.WELCOMED, dm_event_id=dm_event_id)

    def note_empty_lookup(self, follower_id, *, now) -> bool:
        return self._move(follower_id, State.UNCERTAIN, State.UNCERTAIN, queue=State.UNCERTAIN, empty_lookup_at=now)

    def release_uncertain(self, follower_id, *, now) -> bool:
        return self._move(follower_id, State.UNCERTAIN, State.PENDING)

    def reopen_refused(self, follower_id, *, expected, queue, queued_at, now) -> bool:
        return self._move(follower_id, expected, State.PENDING, queued_at=queued_at, **({} if queue == State.PENDING else {"queue": queue}))

    def expire_uncertain(self, follower_id, *, now) -> bool:
        return self._move(follower_id, State.UNCERTAIN, State.UNCERTAIN, queue=EXPIRED_UNCERTAIN_QUEUE)

    def mark_departed(self, follower_id, *, now) -> bool:
        return self._move(follower_id, State.PENDING, State.DEPARTED)

    def requeue_departed(self, follower, *, now, queued_at, queue=State.PENDING) -> bool:
        return self._move(
            follower.id,
            State.DEPARTED,
            State.PENDING,
            queued_at=queued_at,
            name=follower.name,
            username=follower.username,
            **({} if queue == State.PENDING else {"queue": queue}),
        )

    def states(self) -> dict[str, str]:
        return {k: v["state"] for k, v in self.items.items()}
