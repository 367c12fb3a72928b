"""The ledger adapter: who Courtesy has seen and what it did about them, in DynamoDB.

One item per follower ever seen, keyed by ``follower_id``; it is never deleted,
so a follower who leaves and comes back is still known. Followers waiting for,
or in the middle of, a welcome carry a ``queue`` attribute that puts them in the
sparse ``queue-index`` (oldest first by ``queued_at``). Every state change is a
conditional write, so a retry or a second run can never move a follower
backwards (welcomed never becomes pending).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from courtesy.errors import LedgerUnavailable
from courtesy.x_account import Follower

META_KEY = "#meta"  # X ids are numeric, so this can never be a follower
OAUTH_REFRESH_KEY = "#oauth-refresh"  # the lease on refreshing OAuth 2.0 tokens (courtesy.x_auth)
QUEUE_INDEX = "queue-index"
BATCH_GET_LIMIT = 100  # DynamoDB BatchGetItem takes at most 100 keys
_BATCH_RETRIES = 8


class State:
    BASELINE = "baseline"  # followed before Courtesy started: never welcomed
    PENDING = "pending"  # seen after the baseline, waiting for a welcome
    SENDING = "sending"  # claimed by a run; the DM request may be in flight
    WELCOMED = "welcomed"
    UNDELIVERABLE = "undeliverable"  # X refused this recipient: never retried
    FAILED = "failed"  # X refused the message itself: never retried
    UNCERTAIN = "uncertain"  # the DM may exist: never resent blindly
    DEPARTED = "departed"  # unfollowed before being welcomed: not messaged unless they follow again
    SKIPPED = "skipped"  # filtered out (attribute "reason"): never welcomed, even if they pass later
    OPTED_OUT = "opted_out"  # wrote "stop" (or the like): never messaged again, in any mode
    LISTING = "listing"  # in a digest being published (digest mode)
    LISTED = "listed"  # shown to a person in a digest, to welcome by hand: never messaged by Courtesy
    # Wrote to the account (reply mode) before any scan saw them follow: if a scan finds them
    # following within a day, they are owed the welcome their message asked for.
    WROTE = "wrote"


# States in which a person has had a message from Courtesy: only they are sent an opt-out
# confirmation. Everyone else opts out silently (an automated answer would be the first
# automated message they ever got).
MESSAGED_STATES = (State.WELCOMED,)


# Uncertain sends too old to check (X keeps DM events 30 days) wait here forever, reported, never resent.
EXPIRED_UNCERTAIN_QUEUE = "uncertain-expired"
# Reply mode: followers who wrote to the account and are owed their one welcome.
REPLY_DUE_QUEUE = "reply-due"
# Digest mode: followers waiting for the next digest, and those in a digest being published.
DIGEST_QUEUE = "digest"
DIGEST_LISTING_QUEUE = "digest-listing"
# Opt-outs whose one confirmation is still to be sent.
OPT_OUT_CONFIRM_QUEUE = "opt-out-confirm"


class Confirmation:
    """Where an opt-out's one confirmation message stands."""

    DUE = "due"
    SENDING = "sending"  # a send started; if the run died it is never resent (none is better than two)
    SENT = "sent"
    DRY_RUN = "dry-run"  # opted out during a dry run: recorded, nothing sent
    NOT_NEEDED = "not-needed"  # Courtesy never wrote to them: nothing to confirm, nothing sent
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"


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
    # next scan stops when it meets these again (see welcome_cycle).
    head: list[str] = field(default_factory=list)
    next_page_size: int = 0
    daily_day: str = ""
    daily_count: int = 0
    dm_blocked_until: float = 0.0
    # Reply mode: every DM event at or below this id has been handled ("" = inbox not read yet).
    dm_cursor: str = ""
    dm_page_size: int = 0
    # Older stretches of the inbox still to read after a burst: [pagination token, floor id] pairs.
    dm_gaps: list[list[str]] = field(default_factory=list)
    # Sends refused in the same way in a row, to different recipients: {"signature": ...,
    # "people": [[follower id, state written, queue], ...]}. Enough of them means the account
    # or app is refused, not the recipients (see welcome_cycle).
    refusals: dict[str, Any] = field(default_factory=dict)
    # The refusal last judged to be about the account, and for how many runs in a row.
    account_refusal: str = ""
    account_refused_runs: int = 0


def iso(moment: datetime) -> str:
    """A time as the ledger writes it: UTC, microseconds, "Z"; such strings sort in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def queue_key(now: str, position: int) -> str:
    """Sort key in the queue: runs in time order; within a run, deeper in the newest-first
    list (an older follow) sorts first, so the queue is welcomed oldest first."""
    return f"{now}#{999_999 - position:06d}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, typed in item.items():
        ((kind, value),) = typed.items()
        out[key] = float(value) if kind == "N" else value
    return out


class Ledger:
    def __init__(self, client: Any, table_name: str, *, sleep=time.sleep):
        self._db = client
        self._table = table_name
        self._sleep = sleep
        self.reads = 0  # DynamoDB requests, for the run summary and the benchmark
        self.writes = 0

    # --- the meta item ---------------------------------------------------------

    def load_meta(self) -> Meta | None:
        self.reads += 1
        item = self._db.get_item(TableName=self._table, Key={"follower_id": _s(META_KEY)}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        raw = _plain(item)
        return Meta(
            account_id=raw.get("account_id", ""),
            baseline_at=raw.get("baseline_at", ""),
            baseline_done=raw.get("baseline_done", "") == "true",
            baseline_cursor=raw.get("baseline_cursor", ""),
            head=[i for i in raw.get("head", "").split(",") if i],
            next_page_size=int(raw.get("next_page_size", 0)),
            daily_day=raw.get("daily_day", ""),
            daily_count=int(raw.get("daily_count", 0)),
            dm_blocked_until=float(raw.get("dm_blocked_until", 0)),
            dm_cursor=raw.get("dm_cursor", ""),
            dm_page_size=int(raw.get("dm_page_size", 0)),
            dm_gaps=json.loads(raw.get("dm_gaps") or "[]"),
            refusals=json.loads(raw.get("refusals") or "{}"),
            account_refusal=raw.get("account_refusal", ""),
            account_refused_runs=int(raw.get("account_refused_runs", 0)),
        )

    def save_meta(self, meta: Meta) -> None:
        self.writes += 1
        self._db.put_item(
            TableName=self._table,
            Item={
                "follower_id": _s(META_KEY),
                "account_id": _s(meta.account_id),
                "baseline_at": _s(meta.baseline_at),
                "baseline_done": _s("true" if meta.baseline_done else "false"),
                "baseline_cursor": _s(meta.baseline_cursor),
                "head": _s(",".join(meta.head)),
                "next_page_size": _n(meta.next_page_size),
                "daily_day": _s(meta.daily_day),
                "daily_count": _n(meta.daily_count),
                "dm_blocked_until": _n(meta.dm_blocked_until),
                "dm_cursor": _s(meta.dm_cursor),
                "dm_page_size": _n(meta.dm_page_size),
                "dm_gaps": _s(json.dumps(meta.dm_gaps)),
                "refusals": _s(json.dumps(meta.refusals)),
                "account_refusal": _s(meta.account_refusal),
                "account_refused_runs": _n(meta.account_refused_runs),
            },
        )

    def save_daily_count(self, day: str, count: int) -> None:
        """Written after every send, so a crash cannot forget today's welcomes."""
        self.writes += 1
        self._db.update_item(
            TableName=self._table,
            Key={"follower_id": _s(META_KEY)},
            UpdateExpression="SET daily_day = :d, daily_count = :c",
            ExpressionAttributeValues={":d": _s(day), ":c": _n(count)},
        )

    # --- a lease (one holder at a time, lapsing by itself) ----------------------

    def take_lease(self, key: str, *, holder: str, now: float, seconds: float) -> bool:
        """Hold ``key`` until ``now + seconds``. False while another holder's lease is live."""
        self.writes += 1
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"follower_id": _s(key), "holder": _s(holder), "lease_until": _n(now + seconds)},
                ConditionExpression="attribute_not_exists(follower_id) OR lease_until <= :now OR holder = :holder",
                ExpressionAttributeValues={":now": _n(now), ":holder": _s(holder)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release_lease(self, key: str, *, holder: str) -> bool:
        """Let go of a lease this holder has (an update: the role may not delete items)."""
        self.writes += 1
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"follower_id": _s(key)},
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":zero": _n(0), ":holder": _s(holder)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # it lapsed and someone else holds it now
            raise
        return True

    # --- seeing followers ------------------------------------------------------

    def known(self, ids: Iterable[str]) -> dict[str, Known]:
        """The ledger's record of those follower ids it holds (one BatchGetItem per 100 ids)."""
        ids = list(dict.fromkeys(ids))
        known: dict[str, Known] = {}
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request = {
                self._table: {
                    "Keys": [{"follower_id": _s(i)} for i in ids[start : start + BATCH_GET_LIMIT]],
                    "ProjectionExpression": "follower_id, #state, asked_at",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ConsistentRead": True,
                }
            }
            for attempt in range(_BATCH_RETRIES):
                self.reads += 1
                answer = self._db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    raw = _plain(item)
                    known[raw["follower_id"]] = Known(raw.get("state", ""), raw.get("asked_at", ""))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise LedgerUnavailable("DynamoDB left keys unprocessed after retries")
        return known

    def record_baseline(self, followers: Iterable[Follower], now: str) -> int:
        """Remember followers who were there before Courtesy started. Returns how many were new."""
        added = 0
        for follower in followers:
            if self._put_if_absent(follower, {"state": _s(State.BASELINE), "first_seen_at": _s(now)}):
                added += 1
        return added

    def queue_new(self, follower: Follower, *, queued_at: str, now: str, notable: bool = False, queue: str | None = State.PENDING) -> bool:
        """Record a follower seen for the first time as pending, in ``queue`` (None: in no
        queue, as reply mode keeps followers until they write). False if already known."""
        extra = {"state": _s(State.PENDING), "first_seen_at": _s(now), "queued_at": _s(queued_at)}
        if queue:
            extra["queue"] = _s(queue)
        if notable:
            extra["notable"] = _s("true")
        return self._put_if_absent(follower, extra)

    def adopt_writer(self, follower: Follower, *, queued_at: str, now: str, notable: bool, queue: str | None) -> bool:
        """wrote -> pending: someone who wrote before a scan saw them follow is now a follower."""
        fields = {"username": follower.username, "name": follower.name, "queued_at": queued_at, "followed_seen_at": now}
        if notable:
            fields["notable"] = "true"
        return self._transition(follower.id, expected=State.WROTE, new=State.PENDING, fields=fields, queue=queue)

    def skip_writer(self, follower: Follower, *, reason: str, now: str) -> bool:
        """wrote -> skipped: they follow now, and the filters turn them away."""
        fields = {"username": follower.username, "name": follower.name, "reason": reason, "skipped_at": now}
        return self._transition(follower.id, expected=State.WROTE, new=State.SKIPPED, fields=fields)

    def note_writer(self, person_id: str, *, asked_at: str) -> bool:
        """Someone the ledger does not know wrote to the account (reply mode): remember when,
        so a scan that finds them following soon after still owes them their welcome."""
        extra = {"state": _s(State.WROTE), "asked_at": _s(asked_at), "first_seen_at": _s(asked_at)}
        if self._put_if_absent(Follower(person_id, "", ""), extra):
            return True
        # Known as a writer already: keep their latest message's time.
        return self._update(
            person_id,
            "SET asked_at = :asked",
            "#state = :wrote AND asked_at < :asked",
            {"#state": "state"},
            {":asked": _s(asked_at), ":wrote": _s(State.WROTE)},
        )

    def record_skipped(self, follower: Follower, *, reason: str, now: str) -> bool:
        """Remember a new follower the filters turned away, and why. False if already known."""
        return self._put_if_absent(follower, {"state": _s(State.SKIPPED), "reason": _s(reason), "first_seen_at": _s(now)})

    def skip_pending(self, follower_id: str, *, reason: str, now: str) -> bool:
        """pending -> skipped, e.g. blocked after being queued."""
        return self._transition(follower_id, expected=State.PENDING, new=State.SKIPPED, fields={"reason": reason, "skipped_at": now})

    def _put_if_absent(self, follower: Follower, extra: dict[str, Any]) -> bool:
        item = {"follower_id": _s(follower.id), "username": _s(follower.username), "name": _s(follower.name), **extra}
        self.writes += 1
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(follower_id)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # already known: seen followers are never overwritten
            raise
        return True

    # --- the queue ---------------------------------------------------------------

    def queued(self, state: str, limit: int | None = None) -> list[Entry]:
        """Followers in one queue (pending, sending, uncertain, reply-due, ...), oldest first."""
        entries: list[Entry] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": QUEUE_INDEX,
            "KeyConditionExpression": "#q = :q",
            "ExpressionAttributeNames": {"#q": "queue"},
            "ExpressionAttributeValues": {":q": _s(state)},
        }
        while limit is None or len(entries) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(entries)
            self.reads += 1
            answer = self._db.query(**kwargs)
            for item in answer.get("Items", []):
                raw = _plain(item)
                entries.append(
                    Entry(
                        raw["follower_id"],
                        raw.get("state", ""),
                        raw.get("username", ""),
                        raw.get("name", ""),
                        raw.get("queued_at", ""),
                        raw.get("claimed_at", ""),
                        raw.get("notable") == "true",
                        raw.get("asked_at", ""),
                        raw.get("via", ""),
                        raw.get("run_id", ""),
                        raw.get("empty_lookup_at", ""),
                    )
                )
            if "LastEvaluatedKey" not in answer:
                break
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return entries

    def count_queued(self, state: str) -> int:
        total = 0
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": QUEUE_INDEX,
            "KeyConditionExpression": "#q = :q",
            "ExpressionAttributeNames": {"#q": "queue"},
            "ExpressionAttributeValues": {":q": _s(state)},
            "Select": "COUNT",
        }
        while True:
            self.reads += 1
            answer = self._db.query(**kwargs)
            total += answer.get("Count", 0)
            if "LastEvaluatedKey" not in answer:
                return total
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # --- the welcome, one conditional step at a time ---------------------------

    def claim(self, follower_id: str, *, run_id: str, template_id: str, now: str) -> bool:
        """pending -> sending. False if another run got there first or the follower is not pending."""
        return self._transition(
            follower_id,
            expected=State.PENDING,
            new=State.SENDING,
            fields={"run_id": run_id, "template_id": template_id, "claimed_at": now},
            queue=State.SENDING,
        )

    def mark_welcomed(self, follower_id: str, *, run_id: str, dm_event_id: str | None, now: str) -> bool:
        fields = {"welcomed_at": now, "dm_event_id": dm_event_id or "unknown"}
        return self._transition(follower_id, expected=State.SENDING, new=State.WELCOMED, fields=fields, run_id=run_id)

    def mark_undeliverable(self, follower_id: str, *, run_id: str, detail: str, now: str) -> bool:
        fields = {"detail": detail[:500], "closed_at": now}
        return self._transition(follower_id, expected=State.SENDING, new=State.UNDELIVERABLE, fields=fields, run_id=run_id)

    def mark_failed(self, follower_id: str, *, run_id: str, detail: str, now: str) -> bool:
        fields = {"detail": detail[:500], "closed_at": now}
        return self._transition(follower_id, expected=State.SENDING, new=State.FAILED, fields=fields, run_id=run_id)

    def mark_uncertain(self, follower_id: str, *, detail: str, now: str, run_id: str | None = None) -> bool:
        fields = {"detail": detail[:500], "uncertain_since": now}
        return self._transition(
            follower_id, expected=State.SENDING, new=State.UNCERTAIN, fields=fields, queue=State.UNCERTAIN, run_id=run_id
        )

    def release(self, follower_id: str, *, run_id: str, detail: str) -> bool:
        """sending -> pending, only when X provably did not take the message."""
        return self._transition(
            follower_id, expected=State.SENDING, new=State.PENDING, fields={"detail": detail[:500]}, queue=State.PENDING, run_id=run_id
        )

    # --- settling what was left uncertain, and followers who left -------------

    def confirm_uncertain(self, follower_id: str, *, dm_event_id: str, now: str) -> bool:
        """uncertain -> welcomed: our message was found in the conversation."""
        fields = {"welcomed_at": now, "dm_event_id": dm_event_id, "reconciled_at": now}
        return self._transition(follower_id, expected=State.UNCERTAIN, new=State.WELCOMED, fields=fields)

    def note_empty_lookup(self, follower_id: str, *, now: str) -> bool:
        """The conversation showed no message from us once: remembered, still uncertain."""
        fields = {"empty_lookup_at": now}
        return self._transition(follower_id, expected=State.UNCERTAIN, new=State.UNCERTAIN, fields=fields, queue=State.UNCERTAIN)

    def release_uncertain(self, follower_id: str, *, now: str) -> bool:
        """uncertain -> pending: two lookups a while apart show no message from us."""
        fields = {"detail": "no message found in the conversation", "reconciled_at": now}
        return self._transition(follower_id, expected=State.UNCERTAIN, new=State.PENDING, fields=fields, queue=State.PENDING)

    def expire_uncertain(self, follower_id: str, *, now: str) -> bool:
        """Too old to check: stays uncertain for good, out of the queue that gets checked."""
        fields = {"expired_at": now}
        return self._transition(follower_id, expected=State.UNCERTAIN, new=State.UNCERTAIN, fields=fields, queue=EXPIRED_UNCERTAIN_QUEUE)

    def mark_departed(self, follower_id: str, *, now: str) -> bool:
        return self._transition(follower_id, expected=State.PENDING, new=State.DEPARTED, fields={"departed_at": now})

    def requeue_departed(self, follower: Follower, *, now: str, queued_at: str, queue: str | None = State.PENDING) -> bool:
        """departed -> pending: they followed again before ever being welcomed."""
        fields = {"username": follower.username, "name": follower.name, "queued_at": queued_at, "returned_at": now}
        return self._transition(follower.id, expected=State.DEPARTED, new=State.PENDING, fields=fields, queue=queue)

    def reopen_refused(self, follower_id: str, *, expected: str, queue: str | None, queued_at: str, now: str) -> bool:
        """undeliverable or failed -> pending, back in ``queue`` (None: in none, as reply mode keeps
        followers who have not written): the refusal turned out to be about the account or app,
        not this follower, or a person fixed its cause (``courtesy requeue``)."""
        fields = {"queued_at": queued_at, "reopened_at": now, "reopened_from": expected}
        return self._transition(follower_id, expected=expected, new=State.PENDING, fields=fields, queue=queue)

    # --- modes: moving between queues, replies, digests, opt-outs ----------------

    def move_queue(self, follower_id: str, *, from_queue: str, to_queue: str | None) -> bool:
        """A pending follower from one mode's queue to another's (None: out of every queue)."""
        return self._transition(follower_id, expected=State.PENDING, new=State.PENDING, fields={}, queue=to_queue, in_queue=from_queue)

    def ask_reply(self, follower_id: str, *, asked_at: str, queued_at: str) -> bool:
        """A pending follower wrote to the account: owed their one welcome, in the reply queue.
        False if they are not pending or already waiting for it."""
        names = {"#state": "state", "#q": "queue"}
        values = {
            ":pending": _s(State.PENDING),
            ":due": _s(REPLY_DUE_QUEUE),
            ":asked": _s(asked_at),
            ":queued": _s(queued_at),
        }
        return self._update(
            follower_id,
            "SET #q = :due, asked_at = :asked, queued_at = :queued",
            "#state = :pending AND (attribute_not_exists(#q) OR #q <> :due)",
            names,
            values,
        )

    def record_message_sender(self, sender_id: str, *, username: str, name: str, asked_at: str, queued_at: str) -> bool:
        """Someone unknown to the ledger, not a follower, wrote: owed one answer (reply mode,
        when non-followers are answered). False if the ledger knows them already."""
        extra = {
            "state": _s(State.PENDING),
            "via": _s("message"),
            "first_seen_at": _s(asked_at),
            "asked_at": _s(asked_at),
            "queue": _s(REPLY_DUE_QUEUE),
            "queued_at": _s(queued_at),
        }
        return self._put_if_absent(Follower(sender_id, username, name), extra)

    def opt_out(self, person_id: str, *, known_state: str | None, word: str, now: str, confirmation: str) -> bool:
        """Record that this person asked for no more messages. Permanent: every send starts
        from "pending", which they never are again. ``confirmation``: Confirmation.DUE queues
        their one confirmation; anything else says why none is sent. False if they had opted
        out already."""
        confirm = confirmation == Confirmation.DUE
        fields = {"opted_out_at": now, "opt_out_word": word, "confirmation": confirmation}
        queue = OPT_OUT_CONFIRM_QUEUE if confirm else None
        if confirm:
            fields["queued_at"] = now
        for _ in range(3):  # the state may move under us (another opt-out run, a scan): read again
            if known_state == State.OPTED_OUT:
                return False
            if known_state is None:
                extra = {k: _s(v) for k, v in fields.items()}
                extra.update(state=_s(State.OPTED_OUT), state_before_opt_out=_s(""), first_seen_at=_s(now))
                if queue:
                    extra["queue"] = _s(queue)
                if self._put_if_absent(Follower(person_id, "", ""), extra):
                    return True
            elif self._transition(
                person_id,
                expected=known_state,
                new=State.OPTED_OUT,
                fields={**fields, "state_before_opt_out": known_state},
                queue=queue,
            ):
                return True
            known = self.known([person_id]).get(person_id)
            known_state = known.state if known else None
        raise LedgerUnavailable(f"Could not record the opt-out of {person_id}: its record kept changing")

    def claim_confirmation(self, person_id: str, *, run_id: str, now: str) -> bool:
        """due -> sending, out of the queue: a run that dies now never sends it again."""
        return self._update(
            person_id,
            "SET confirmation = :sending, run_id = :run, confirm_claimed_at = :now REMOVE #q",
            "#state = :opted AND confirmation = :due",
            {"#state": "state", "#q": "queue"},
            {
                ":sending": _s(Confirmation.SENDING),
                ":run": _s(run_id),
                ":now": _s(now),
                ":opted": _s(State.OPTED_OUT),
                ":due": _s(Confirmation.DUE),
            },
        )

    def settle_confirmation(self, person_id: str, *, run_id: str, outcome: str, now: str, detail: str = "") -> bool:
        """sending -> sent / undeliverable / failed, or back to due (and the queue) when X
        provably did not take it."""
        values = {
            ":outcome": _s(outcome),
            ":now": _s(now),
            ":detail": _s(detail[:500]),
            ":sending": _s(Confirmation.SENDING),
            ":run": _s(run_id),
        }
        update = "SET confirmation = :outcome, confirmation_at = :now, confirmation_detail = :detail"
        if outcome == Confirmation.DUE:
            update += ", #q = :queue, queued_at = :now"
            values[":queue"] = _s(OPT_OUT_CONFIRM_QUEUE)
        return self._update(
            person_id,
            update,
            "confirmation = :sending AND run_id = :run",
            {"#q": "queue"} if outcome == Confirmation.DUE else {},
            values,
        )

    def start_listing(self, follower_id: str, *, digest_id: str, now: str, again: bool = False) -> bool:
        """pending (digest queue) -> listing, or a listing left by an interrupted digest taken over."""
        fields = {"run_id": digest_id, "listing_at": now}
        if again:
            return self._transition(
                follower_id,
                expected=State.LISTING,
                new=State.LISTING,
                fields={**fields, "maybe_listed_before": "true"},
                queue=DIGEST_LISTING_QUEUE,
            )
        return self._transition(
            follower_id, expected=State.PENDING, new=State.LISTING, fields=fields, queue=DIGEST_LISTING_QUEUE, in_queue=DIGEST_QUEUE
        )

    def mark_listed(self, follower_id: str, *, digest_id: str, now: str) -> bool:
        fields = {"digest_id": digest_id, "listed_at": now}
        return self._transition(follower_id, expected=State.LISTING, new=State.LISTED, fields=fields, run_id=digest_id)

    def release_listing(self, follower_id: str, *, digest_id: str) -> bool:
        """listing -> pending (digest queue): the digest was provably not published."""
        return self._transition(follower_id, expected=State.LISTING, new=State.PENDING, fields={}, queue=DIGEST_QUEUE, run_id=digest_id)

    def _update(self, key: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> bool:
        self.writes += 1
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"follower_id": _s(key)},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _transition(
        self,
        follower_id: str,
        *,
        expected: str,
        new: str,
        fields: dict[str, str],
        queue: str | None = None,
        run_id: str | None = None,
        in_queue: str | None = None,
    ) -> bool:
        names = {"#state": "state", "#q": "queue"}
        values: dict[str, Any] = {":expected": _s(expected), ":new": _s(new)}
        sets = ["#state = :new"]
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = _s(value)
            sets.append(f"#f{i} = :f{i}")
        if queue:
            values[":queue"] = _s(queue)
            sets.append("#q = :queue")
            update = "SET " + ", ".join(sets)
        else:
            update = "SET " + ", ".join(sets) + " REMOVE #q"
        condition = "#state = :expected"
        if run_id is not None:
            # Only the run that claimed a follower may settle it.
            names["#run"] = "run_id"
            values[":run"] = _s(run_id)
            condition += " AND #run = :run"
        if in_queue is not None:
            values[":in_queue"] = _s(in_queue)
            condition += " AND #q = :in_queue"
        self.writes += 1
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"follower_id": _s(follower_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
