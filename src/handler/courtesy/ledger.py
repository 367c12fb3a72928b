"""The ledger: who Courtesy has seen and what it did about them.

One item per follower ever seen, keyed by ``follower_id``; it is never deleted by the
function, so a follower who leaves and comes back is still known. Followers waiting for,
or in the middle of, a welcome carry a ``queue`` attribute that puts them in the sparse
``queue-index`` (oldest first by ``queued_at``). Every change of a follower's record is
one row of courtesy.lifecycle.TRANSITIONS, applied by ``move`` as one conditional write,
so a retry or a second run can never move a follower backwards (welcomed never becomes
pending). The items live in a courtesy.ledger_store store: DynamoDB, or memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from courtesy.domain import Follower
from courtesy.errors import LedgerUnavailable
from courtesy.ledger_store import KEY, Check, Condition, DynamoStore, Item, Store, number
from courtesy.lifecycle import ANY, BY_NAME, CHOSEN, GIVEN, GONE, KEEP, NEW, Confirmation, Queue, State, Transition

META_KEY = "#meta"  # X ids are numeric, so this can never be a follower
OAUTH_REFRESH_KEY = "#oauth-refresh"
# The newest webhook events handled (courtesy.event_worker): type, outcome, when; never a payload.
RECENT_EVENTS_KEY = "#webhook-events"  # the lease on refreshing OAuth 2.0 tokens (courtesy.x_auth)
# Today's sends (Ledger.count_send): changed only by atomic increments, never by save_meta.
DAILY_COUNT_FIELDS = ("daily_day", "daily_count")
COUNT_ATTEMPTS = 5  # each attempt fails only if another sender changed the count in between
DETAIL_MAX = 500  # characters of an error's detail kept on a record
_UNSET: Any = object()


@dataclass(frozen=True)
class Entry:
    follower_id: str
    state: str
    username: str
    name: str
    queued_at: str = ""
    claimed_at: str = ""
    notable: bool = False
    asked_at: str = ""  # when they wrote to the account (reply mode)
    via: str = ""  # "message": not a follower; they wrote (reply mode, non-followers answered)
    run_id: str = ""  # the run (or digest) that claimed them
    # An uncertain send whose conversation showed no message from us once: a second empty
    # lookup a while later releases it (one empty answer is not evidence enough).
    empty_lookup_at: str = ""

    @classmethod
    def of(cls, item: Item) -> Entry:
        text = {k: str(v) for k, v in item.items()}
        return cls(
            text[KEY],
            text.get("state", ""),
            text.get("username", ""),
            text.get("name", ""),
            text.get("queued_at", ""),
            text.get("claimed_at", ""),
            text.get("notable") == "true",
            text.get("asked_at", ""),
            text.get("via", ""),
            text.get("run_id", ""),
            text.get("empty_lookup_at", ""),
        )


@dataclass(frozen=True)
class Known:
    """What a scan needs to know of a follower already in the ledger."""

    state: str
    asked_at: str = ""  # when they wrote to the account, if they did (reply mode)


@dataclass
class Meta:
    account_id: str = ""
    baseline_at: str = ""
    baseline_done: bool = False
    baseline_cursor: str = ""
    # The top of the followers list as the last complete scan saw it, newest first: the
    # next scan stops when it meets these again (see courtesy.scan).
    head: list[str] = field(default_factory=list)
    next_page_size: int = 0
    daily_day: str = ""
    daily_count: int = 0
    dm_blocked_until: float = 0.0
    # The DM window reset a wake-up is already asked for (Delivery "webhook", courtesy.welcoming).
    wake_up_at: float = 0.0
    # Reply mode: every DM event at or below this id has been handled ("" = inbox not read yet).
    dm_cursor: str = ""
    dm_page_size: int = 0
    # Older stretches of the inbox still to read after a burst: [pagination token, floor id] pairs.
    dm_gaps: list[list[str]] = field(default_factory=list)
    # Sends refused in the same way in a row, to different recipients: {"signature": ...,
    # "people": [[follower id, state written], ...]}. Enough of them means the account or
    # app is refused, not the recipients (see courtesy.sending).
    refusals: dict[str, Any] = field(default_factory=dict)
    # The refusal last judged to be about the account, and for how many runs in a row.
    account_refusal: str = ""
    account_refused_runs: int = 0

    @classmethod
    def of(cls, raw: Item) -> Meta:
        return cls(
            account_id=raw.get("account_id", ""),
            baseline_at=raw.get("baseline_at", ""),
            baseline_done=raw.get("baseline_done", "") == "true",
            baseline_cursor=raw.get("baseline_cursor", ""),
            head=[i for i in raw.get("head", "").split(",") if i],
            next_page_size=int(raw.get("next_page_size", 0)),
            daily_day=raw.get("daily_day", ""),
            daily_count=int(raw.get("daily_count", 0)),
            dm_blocked_until=float(raw.get("dm_blocked_until", 0)),
            wake_up_at=float(raw.get("wake_up_at", 0)),
            dm_cursor=raw.get("dm_cursor", ""),
            dm_page_size=int(raw.get("dm_page_size", 0)),
            dm_gaps=json.loads(raw.get("dm_gaps") or "[]"),
            refusals=json.loads(raw.get("refusals") or "{}"),
            account_refusal=raw.get("account_refusal", ""),
            account_refused_runs=int(raw.get("account_refused_runs", 0)),
        )

    def item(self) -> Item:
        return {
            KEY: META_KEY,
            "account_id": self.account_id,
            "baseline_at": self.baseline_at,
            "baseline_done": "true" if self.baseline_done else "false",
            "baseline_cursor": self.baseline_cursor,
            "head": ",".join(self.head),
            "next_page_size": number(self.next_page_size),
            "daily_day": self.daily_day,
            "daily_count": number(self.daily_count),
            "dm_blocked_until": number(self.dm_blocked_until),
            "wake_up_at": number(self.wake_up_at),
            "dm_cursor": self.dm_cursor,
            "dm_page_size": number(self.dm_page_size),
            "dm_gaps": json.dumps(self.dm_gaps),
            "refusals": json.dumps(self.refusals),
            "account_refusal": self.account_refusal,
            "account_refused_runs": number(self.account_refused_runs),
        }


def plain(item: Item) -> dict[str, Any]:
    """An item with its numbers as int or float, for output."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        out[key] = value
    return out


class TransitionRefused(ValueError):
    """A caller asked for a move the lifecycle table does not allow (a programming error)."""


class Ledger:
    def __init__(
        self, client: Any = None, table_name: str = "", *, sleep: Callable[[float], None] = time.sleep, store: Store | None = None
    ):
        self.store: Store = store if store is not None else DynamoStore(client, table_name, sleep=sleep)

    @property
    def reads(self) -> int:  # store requests, for the run summary and the benchmark
        return self.store.reads

    @property
    def writes(self) -> int:
        return self.store.writes

    # --- the meta item ---------------------------------------------------------

    def load_meta(self) -> Meta | None:
        raw = self.store.get(META_KEY)
        return None if raw is None else Meta.of(raw)

    def save_meta(self, meta: Meta) -> None:
        """Everything but the daily count, which only count_send changes (atomically)."""
        fields = {k: v for k, v in meta.item().items() if k not in (KEY, *DAILY_COUNT_FIELDS)}
        self.store.update(META_KEY, set_=fields)

    def count_send(self, day: str, *, new_day: bool = False) -> tuple[str, int]:
        """One more DM sent on ``day`` (UTC): (the day counted, its count). One atomic increment
        after every send, so a crash cannot forget today's sends and a batch of events sending
        while a scheduled run does cannot lose one. A new day starts the count again (tried
        first when the caller expects one, to save a refused request)."""
        for _ in range(COUNT_ATTEMPTS):
            older = ((Check("daily_day", "absent"),), (Check("daily_day", "<", day),))
            if new_day and self.store.update(META_KEY, set_={"daily_day": day, "daily_count": number(1)}, when=older):
                return day, 1
            count = self.store.increment(META_KEY, "daily_count", when=((Check("daily_day", "=", day),),))
            if count is not None:
                return day, count
            stored = str((self.store.get(META_KEY) or {}).get("daily_day", ""))
            day = max(day, stored)  # a newer day stored: the other sender's clock passed midnight first
            new_day = stored < day
        raise LedgerUnavailable("the daily count kept changing under this send")

    # --- bookkeeping items that are not followers (e.g. the OAuth refresh lease) ---

    def put_record(self, key: str, attributes: Mapping[str, Any], *, when: Condition) -> bool:
        if not key.startswith("#"):
            raise TransitionRefused("a follower's record changes only through a lifecycle transition")
        return self.store.put({KEY: key, **attributes}, when=when)

    def update_record(self, key: str, attributes: Mapping[str, Any], *, when: Condition) -> bool:
        if not key.startswith("#"):
            raise TransitionRefused("a follower's record changes only through a lifecycle transition")
        return self.store.update(key, set_=attributes, when=when)

    # --- reading ---------------------------------------------------------------

    def get(self, follower_id: str) -> Item | None:
        return self.store.get(follower_id)

    def known(self, ids: Iterable[str]) -> dict[str, Known]:
        """The ledger's record of those follower ids it holds (one batch read per 100 ids)."""
        items = self.store.get_many(list(ids), ("state", "asked_at"))
        return {key: Known(str(item.get("state", "")), str(item.get("asked_at", ""))) for key, item in items.items()}

    def queued(self, queue: str, limit: int | None = None) -> list[Entry]:
        """Followers in one queue, oldest first."""
        return [Entry.of(item) for item in self.store.queue(queue, limit)]

    def count_queued(self, queue: str) -> int:
        return self.store.count_queue(queue)

    # --- the lifecycle ----------------------------------------------------------

    def move(
        self,
        name: str,
        follower_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        expected: str | None = None,
        run_id: str | None = None,
        queue: str | None = _UNSET,
        given: str | None = _UNSET,
    ) -> bool:
        """Make the transition ``name`` (courtesy.lifecycle) for one follower, as one conditional
        write. ``expected``: the state it starts from, when the transition has several;
        ``run_id``: the claiming run, when only it may move them; ``queue``: where they wait
        next, when the mode decides; ``given``: the value a GIVEN condition compares with.
        Returns False when the record is not as the transition requires (someone else moved it)."""
        t = BY_NAME[name]
        fields = {k: str(v) if isinstance(v, str) else v for k, v in (fields or {}).items()}  # enums as plain text
        source = self._source(t, expected)
        when = [Check("state", "=", source)] if source not in (NEW, ANY) else []
        if source == NEW:
            when.append(Check(KEY, "absent"))
        if t.by_run:
            if run_id is None:
                raise TransitionRefused(f"{name} needs the run that claimed the follower")
            when.append(Check("run_id", "=", run_id))
        for attribute, op, value in t.when:
            if value == GIVEN:
                if given is _UNSET:
                    raise TransitionRefused(f"{name} needs the value of {attribute} it expects")
                when.append(Check(attribute, "absent") if given is None else Check(attribute, "=", given))
            elif op == "<":
                when.append(Check(attribute, "<", fields[attribute]))
            else:
                when.append(Check(attribute, op, value))
        if t.to == GONE:
            return self.store.delete(follower_id, when=[when])
        target = self._queue(t, queue)
        changes: dict[str, Any] = dict(fields)
        if t.to != KEEP:
            changes["state"] = str(t.to)
        if target not in (None, KEEP):
            changes["queue"] = str(target)
        if source == NEW:
            return self.store.put({KEY: follower_id, **changes}, when=[when])
        remove = list(t.removes) + (["queue"] if target is None else [])
        return self.store.update(follower_id, set_=changes, remove=remove, when=[when])

    @staticmethod
    def _source(t: Transition, expected: str | None) -> str:
        if len(t.sources) == 1:
            if expected not in (None, t.sources[0]):
                raise TransitionRefused(f"{t.name} starts from {t.sources[0]}, not {expected}")
            return t.sources[0]
        if expected not in t.sources:
            raise TransitionRefused(f"{t.name} starts from one of {', '.join(t.sources)}, not {expected}")
        return str(expected)

    @staticmethod
    def _queue(t: Transition, queue: str | None) -> str | None:
        if t.queue == CHOSEN:
            if queue is _UNSET:
                raise TransitionRefused(f"{t.name} needs the queue the welcome mode puts them in")
            return queue
        if queue is not _UNSET and queue != t.queue:
            raise TransitionRefused(f"{t.name} always ends in queue {t.queue}")
        return t.queue

    # --- moves made of more than one write ---------------------------------------

    def record(self, name: str, follower: Follower, fields: Mapping[str, Any], *, queue: str | None = _UNSET) -> bool:
        """A follower seen for the first time (a transition from NEW). False if already known:
        seen followers are never overwritten."""
        fields = {"username": follower.username, "name": follower.name, **fields}
        return self.move(name, follower.id, fields=fields, expected=NEW, queue=queue)

    def record_baseline(self, followers: Iterable[Follower], now: str) -> int:
        """Remember followers who were there before Courtesy started. Returns how many were new."""
        return sum(self.record("record_baseline", f, {"first_seen_at": now}) for f in followers)

    def note_writer(self, person_id: str, *, asked_at: str) -> bool:
        """Someone the ledger does not know wrote to the account (reply mode): remember when,
        so a scan that finds them following soon after still owes them their welcome."""
        if self.record("note_writer", Follower(person_id, "", ""), {"asked_at": asked_at, "first_seen_at": asked_at}):
            return True
        return self.move("renote_writer", person_id, fields={"asked_at": asked_at})  # keep their latest message's time

    def opt_out(self, person_id: str, *, known_state: str | None, word: str, now: str, confirmation: str) -> bool:
        """Record that this person asked for no more messages. Permanent: every send starts
        from "pending", which they never are again. ``confirmation``: Confirmation.DUE queues
        their one confirmation; anything else says why none is sent. False if they had opted
        out already."""
        confirm = confirmation == Confirmation.DUE
        fields = {"opted_out_at": now, "opt_out_word": word, "confirmation": str(confirmation)}
        if confirm:
            fields["queued_at"] = now
        queue = Queue.OPT_OUT_CONFIRM if confirm else None
        for _ in range(3):  # the state may move under us (another opt-out run, a scan): read again
            if known_state == State.OPTED_OUT:
                return False
            if known_state is None:
                new = {**fields, "state_before_opt_out": "", "first_seen_at": now}
                if self.record("opt_out", Follower(person_id, "", ""), new, queue=queue):
                    return True
            elif self.move("opt_out", person_id, expected=known_state, fields={**fields, "state_before_opt_out": known_state}, queue=queue):
                return True
            known = self.known([person_id]).get(person_id)
            known_state = known.state if known else None
        raise LedgerUnavailable(f"Could not record the opt-out of {person_id}: its record kept changing")


def detail(text: object) -> str:
    """An error's detail as kept on a record: bounded."""
    return str(text)[:DETAIL_MAX]
