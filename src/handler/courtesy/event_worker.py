"""The worker of X's webhook: acts on the events the receiver (courtesy.webhook_receiver) queued.

Each SQS message is one X Activity API event, its body the event's ``data`` object
({"event_uuid", "event_type", "filter": {"user_id"}, "payload", ...}). What each does:

``follow.follow``, someone following the account
    Recorded exactly as a scan records a follower it finds (courtesy.intake: the filters,
    notable, departed and wrote rules), once the baseline is done; before it, ignored (the
    first scheduled run takes the baseline, which sees them). Then, if the mode sends and
    they wait in the queue it welcomes, the queue is welcomed through the scheduled run's own
    units (courtesy.welcoming: claim, send, record; the per-run cap, the daily limit and X's
    DM rate limits), once for the whole batch. An event is news of a follow, not proof that
    they still follow (it may come late): X is asked first, one users lookup for the batch.
``follow.follow``, the account following someone
    Ignored.
``follow.unfollow``, someone leaving the account
    If they still wait for their welcome, X is asked whether they follow (the event may be
    late, and they may have followed again since): marked departed if X says they do not;
    otherwise nothing.
``dm.received``
    In a mode that reads the inbox (reply mode), each inbound message of the account's 1:1
    conversations is handled by the scheduled inbox read's own rule
    (courtesy.reply_inbox.handle_messages: opt-outs recorded, a pending follower who writes
    owed their welcome, a non-follower answered if asked for, anyone else noted as a writer),
    once the baseline is done and reply mode's first inbox read has noted where the inbox
    stood; messages at or below the inbox cursor were read already (or are history) and are
    left alone. If that leaves someone in the queue the mode welcomes (or an opt-out owed its
    confirmation), the queue is welcomed as for a follow (confirmations first, as the
    scheduled run sends them). The inbox read still reads every message later, a safety net:
    handling a message twice changes nothing. In other modes, ignored, as the scheduled run
    ignores messages there. Message text is never logged.
``oauth.revoke``
    The account took back the app's access: the batch fails with CredentialsRejected
    (a PersonNeeded error), so the alarm asks a person.
``courtesy.wake_up`` (not X's: Courtesy's own, domain.wake_up_event)
    A batch that left followers waiting for X's DM window queued it, delayed to the window's
    reset (courtesy.welcoming): the queue is welcomed. Nothing else would invoke the function
    before the next safety-net run.

An unknown or malformed message fails alone (SQS partial batch response); the rest of the
batch goes on. The batches reach the scheduled function itself (courtesy.app dispatches them
here): its reserved concurrency of 1 keeps event handling and scheduled runs from overlapping.

Deduplication. X may deliver an event more than once, and the receiver may queue it twice.
Every effect of an event is an idempotent ledger transition (``record_new`` is
put-if-absent, ``mark_departed`` and ``requeue_departed`` are conditional, a welcome starts
with a conditional claim), so handling an event twice changes nothing. The bookkeeping record
"#event/<event_uuid>" only saves the work (ledger reads, a presence lookup) of a second
handling. It is written *after* the event's effects: a worker that dies between the effects
and the record leaves an event that is handled again, harmlessly; written before, a worker
dying after it would lose the event for good. Events that did nothing (ignored) get no record: handling them again costs a read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from courtesy.domain import WAKE_UP_EVENT, ActivityEvent, DmEvent, activity_event, follower_from_user, iso, opaque_id, queue_key
from courtesy.errors import CourtesyError, CredentialsRejected, PersonNeeded
from courtesy.intake import FollowObservation, is_new, record_follows
from courtesy.ledger import META_KEY, RECENT_EVENTS_KEY, Entry, Ledger, Meta
from courtesy.ledger_store import KEY, Check, number
from courtesy.lifecycle import Queue, State
from courtesy.observability import logger
from courtesy.policy import policy_for
from courtesy.presence import confirm_following
from courtesy.reply_inbox import handle_messages, one_to_one_conversation_id
from courtesy.sending import Sender, SendReport
from courtesy.settings import Settings
from courtesy.welcome_cycle import TIME_RESERVE_SECONDS
from courtesy.welcoming import Welcomer
from courtesy.x_account import XAccount

EVENT_KEY_PREFIX = "#event/"
RECENT_EVENTS_KEPT = 20  # in the ledger's RECENT_EVENTS_KEY record, for `courtesy webhook status`
# How long an event's bookkeeping record is worth keeping: X deduplicates (and replays) within 24 hours.
# Written as "expiration" (epoch seconds), the attribute a DynamoDB TTL would use.
EVENT_RECORD_SECONDS = 2 * 24 * 60 * 60
# The meta fields the welcome step may change (the daily count is written after every send by
# Sender.count_sent). Only these are written back: the rest of the meta belongs to the scheduled run.
WELCOME_META_FIELDS = ("dm_blocked_until", "wake_up_at", "refusals", "account_refusal", "account_refused_runs")

# What happened to one event (WorkerResult.outcomes counts them).
HANDLED = "handled"
DUPLICATE = "duplicate"
BEFORE_BASELINE = "ignored: before the baseline"
OWN_FOLLOW = "ignored: the account's own follow"
NOT_THE_ACCOUNT = "ignored: not about the account"
ALREADY_KNOWN = "ignored: already known"
NOT_PENDING = "ignored: not waiting for a welcome"
STILL_FOLLOWS = "ignored: X says they follow"
NOT_ASKED = "left waiting: X could not be asked"
NO_INBOX = "ignored: the mode reads no messages"
INBOX_NOT_STARTED = "ignored: reply mode's inbox not read yet"
ALREADY_READ = "ignored: read by the inbox already"
REVOKED = "access revoked"


class MalformedEvent(CourtesyError):
    """A message that is not an event this worker understands. Its text is ours, never the message's."""


@dataclass
class WorkerResult:
    """What one batch did, for the log and the metrics."""

    run_id: str
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    new_followers: int = 0
    departed: int = 0
    opted_out: int = 0
    replies_due: int = 0  # people who wrote and are now owed their welcome
    welcomed: int = 0
    confirmations_sent: int = 0
    failed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    rate_limited: bool = False
    notes: list[str] = field(default_factory=list)
    batch_item_failures: list[dict[str, str]] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_event(body: str) -> ActivityEvent:
    """One SQS message body as an event, or MalformedEvent."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedEvent("message body is not JSON") from None
    event = activity_event(data)
    if event is None:
        raise MalformedEvent("malformed event")
    return event


def _user(payload: Mapping[str, Any], side: str) -> dict[str, Any]:
    user = (payload.get(side) or {}).get("data") if isinstance(payload.get(side), dict) else None
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"].isdigit():
        raise MalformedEvent(f"follow event without a {side} user")
    return user


def _digits(value: Any) -> str | None:
    text = opaque_id(value)
    return text if text is not None and text.isascii() and text.isdigit() else None


def _dm_events(payload: Mapping[str, Any]) -> list[DmEvent]:
    """A dm.received payload's messages as the inbox read sees them (newest first), or
    MalformedEvent. Other event kinds in the list are no messages: left out."""
    raw_events, users = payload.get("direct_message_events"), payload.get("users", {})
    if not isinstance(raw_events, list) or not isinstance(users, dict):
        raise MalformedEvent("dm event without its messages")
    events = []
    for raw in raw_events:
        if not isinstance(raw, dict):
            raise MalformedEvent("malformed dm event")
        if raw.get("type") != "message_create":
            continue
        create = raw.get("message_create")
        create = create if isinstance(create, dict) else {}
        target, data = create.get("target"), create.get("message_data")
        event_id, sender, stamp = _digits(raw.get("id")), _digits(create.get("sender_id")), _digits(raw.get("created_timestamp"))
        recipient = _digits(target.get("recipient_id")) if isinstance(target, dict) else None
        text = data.get("text") if isinstance(data, dict) else None
        if event_id is None or sender is None or recipient is None or stamp is None or not isinstance(text, str):
            raise MalformedEvent("malformed dm event")
        try:
            created = datetime.fromtimestamp(int(stamp) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise MalformedEvent("malformed dm event time") from None
        user = users.get(sender)
        user = user if isinstance(user, dict) else {}
        username, name = user.get("username"), user.get("name")
        events.append(
            DmEvent(
                event_id,
                sender,
                text,
                created,
                one_to_one_conversation_id(sender, recipient),
                username if isinstance(username, str) else "",
                name if isinstance(name, str) else "",
            )
        )
    return sorted(events, key=lambda e: int(e.id), reverse=True)


class EventWorker:
    """One batch of events (make one per batch)."""

    def __init__(
        self,
        *,
        x: XAccount,
        ledger: Ledger,
        settings: Settings,
        now: Callable[[], datetime],
        time_left: Callable[[], float],
        run_id: str,
        sleep: Callable[[float], None] = time.sleep,
        wake_up: Callable[[str, float], None] | None = None,
    ):
        self.x, self.ledger, self.settings, self.now, self.time_left = x, ledger, settings, now, time_left
        self.sleep, self.wake_up = sleep, wake_up
        self.policy = policy_for(settings.welcome_mode)
        self.result = WorkerResult(run_id=run_id)
        self.started = iso(now())
        self._meta: Meta | None = None
        self.welcome_due = False
        self.revoked = False
        self.seen: list[dict[str, str]] = []  # this batch's events, oldest first: type, outcome, when

    @property
    def meta(self) -> Meta:
        if self._meta is None:
            self._meta = self.ledger.load_meta() or Meta()
        return self._meta

    # --- one record ------------------------------------------------------------

    def handle_record(self, record: SQSRecord) -> str:
        """The record handler: raises for a message that must fail (alone)."""
        event = parse_event(record.body)
        self.result.events += 1
        marker = EVENT_KEY_PREFIX + event.event_uuid
        if self.ledger.get(marker) is not None:
            outcome = DUPLICATE
        else:
            outcome = self._dispatch(event)
            if outcome in (HANDLED, REVOKED, NOT_PENDING):
                # After the effects, never before: see the module's docstring.
                attributes = {
                    "event_type": event.event_type,
                    "outcome": outcome,
                    "handled_at": iso(self.now()),
                    "run_id": self.result.run_id,
                    "expiration": number(int(self.now().timestamp()) + EVENT_RECORD_SECONDS),
                }
                self.ledger.put_record(marker, attributes, when=((Check(KEY, "absent"),),))
        self.result.count(outcome)
        self.seen.append({"event_type": event.event_type[:64], "outcome": outcome, "at": iso(self.now())})
        logger.info("Webhook event", extra={"event_type": event.event_type[:64], "event_uuid": event.event_uuid[:64], "outcome": outcome})
        return outcome

    def _dispatch(self, event: ActivityEvent) -> str:
        if event.event_type == "follow.follow":
            return self._follow(event)
        if event.event_type == "follow.unfollow":
            return self._unfollow(event)
        if event.event_type == "dm.received":
            return self._messages(event)
        if event.event_type == WAKE_UP_EVENT:
            if not self.meta.baseline_done:
                return BEFORE_BASELINE
            self.welcome_due = True  # X's DM window has reset: the queue is welcomed after the batch
            return HANDLED
        if event.event_type == "oauth.revoke":
            self.revoked = True  # raised after the batch (a record handler's errors only fail its record)
            return REVOKED
        raise MalformedEvent("unknown event type")

    def _sides(self, event: ActivityEvent) -> tuple[dict[str, Any], dict[str, Any], str | None]:
        """(source, target, why ignored or None)."""
        source, target = _user(event.payload, "source"), _user(event.payload, "target")
        account = self.meta.account_id
        if not self.meta.baseline_done or not account:
            return source, target, BEFORE_BASELINE
        if event.user_id != account:
            return source, target, NOT_THE_ACCOUNT
        if source["id"] == account:
            return source, target, OWN_FOLLOW
        if target["id"] != account:
            return source, target, NOT_THE_ACCOUNT
        return source, target, None

    def _follow(self, event: ActivityEvent) -> str:
        source, _, ignored = self._sides(event)
        if ignored:
            return ignored
        follower = follower_from_user(source)
        known = self.ledger.known([follower.id]).get(follower.id)
        if is_new(known):
            now = self.now()
            observation = FollowObservation(follower, queue_key(iso(now), 0), known)
            intake = record_follows(
                [observation], ledger=self.ledger, policy=self.policy, filters=self.settings.filters, now=self.now, seen_at=iso(now)
            )
            self.result.new_followers += intake.new_followers
            for reason, count in intake.skipped_by_reason.items():
                self.result.skipped_by_reason[reason] = self.result.skipped_by_reason.get(reason, 0) + count
        elif known is not None and known.state != State.PENDING:
            return ALREADY_KNOWN
        # An event says they followed, not that they still do: it may come late (held back by X,
        # replayed, redelivered by SQS) after they left, and no unfollow event need come before
        # it. So the welcome step asks X whether they follow now (one batched users lookup), as
        # it does for anyone queued who is not in a run's own pages.
        if self.policy.sends:
            item = self.ledger.get(follower.id) or {}
            if item.get("queue") == str(self.policy.welcomes_from):
                self.welcome_due = True
        return HANDLED

    def _unfollow(self, event: ActivityEvent) -> str:
        source, _, ignored = self._sides(event)
        if ignored:
            return ignored
        follower_id = str(source["id"])
        item = self.ledger.get(follower_id)
        if item is None or item.get("state") != State.PENDING:
            return NOT_PENDING
        # An unfollow event may come late too (held back by X, replayed) after they followed
        # again: X is asked whether they still follow before they are marked departed.
        presence = confirm_following([Entry.of(item)], present={}, x=self.x, ledger=self.ledger, now=self.now)
        self.result.notes += presence.notes
        if presence.departed:
            self.result.departed += presence.departed
            return HANDLED
        return STILL_FOLLOWS if follower_id in presence.current else NOT_ASKED

    def _messages(self, event: ActivityEvent) -> str:
        if not self.policy.reads_inbox:
            return NO_INBOX  # as the scheduled run, which reads no messages in this mode
        messages = _dm_events(event.payload)
        meta, account = self.meta, self.meta.account_id
        if not meta.baseline_done or not account:
            return BEFORE_BASELINE
        if event.user_id != account:
            return NOT_THE_ACCOUNT
        cursor = meta.dm_cursor
        if not cursor or not cursor.isdigit():
            # Reply mode's first inbox read notes where the inbox stands: what came before is history.
            return INBOX_NOT_STARTED
        fresh = [m for m in messages if int(m.id) > int(cursor)]
        if messages and not fresh:
            return ALREADY_READ  # at or below the cursor: read (or history) already
        handled = handle_messages(fresh, ledger=self.ledger, settings=self.settings, now=self.now, account_id=account)
        self.result.opted_out += handled.opted_out
        self.result.replies_due += handled.replies_due
        if self.policy.sends:
            # Anyone these messages left to welcome or to confirm, even by an earlier delivery
            # of this event whose welcome did not happen, is welcomed now.
            due = {str(self.policy.welcomes_from), str(Queue.OPT_OUT_CONFIRM)}
            for sender in {m.sender_id for m in fresh if m.sender_id != account}:
                if (self.ledger.get(sender) or {}).get("queue") in due:
                    self.welcome_due = True
        return HANDLED

    # --- after the batch ---------------------------------------------------------

    def note_recent(self) -> None:
        """Keep the newest events handled where the operator's status command reads them. Only
        bookkeeping: a failure is logged, and changes nothing the batch did."""
        if not self.seen:
            return
        try:
            before = (self.ledger.get(RECENT_EVENTS_KEY) or {}).get("recent") or "[]"
            kept = json.loads(before) if isinstance(before, str) else []
            recent = ([*reversed(self.seen)] + (kept if isinstance(kept, list) else []))[:RECENT_EVENTS_KEPT]
            self.ledger.put_record(RECENT_EVENTS_KEY, {"last_batch_at": iso(self.now()), "recent": json.dumps(recent)}, when=())
        except (CourtesyError, ClientError, BotoCoreError, ValueError) as exc:
            logger.warning("Could not note the recent webhook events", extra={"reason": type(exc).__name__})

    def welcome(self) -> None:
        """Welcome the mode's queue, as the scheduled run does, if this batch queued someone."""
        # A dry run's queue never drains: welcoming it after every batch would ask X (billed per
        # user) about the same queued followers again and again. The scheduled run previews them.
        if not (self.welcome_due and self.policy.sends) or self.settings.dry_run:
            return
        meta = self.meta
        sender = Sender(
            x=self.x,
            ledger=self.ledger,
            now=self.now,
            run_id=self.result.run_id,
            meta=meta,
            report=SendReport(),
            sleep=self.sleep,
            wake_up=self.wake_up,
        )
        welcomer = Welcomer(
            sender,
            settings=self.settings,
            policy=self.policy,
            present={},  # nobody is taken to follow on an event's word
            out_of_time=lambda: self.time_left() < TIME_RESERVE_SECONDS,
            started=self.started,
        )
        try:
            report = welcomer.run()
        finally:
            item = meta.item()
            self.ledger.update_record(META_KEY, {k: item[k] for k in WELCOME_META_FIELDS}, when=((Check("baseline_done", "=", "true"),),))
        result = self.result
        result.welcomed += report.welcomed
        result.confirmations_sent += report.confirmations_sent
        result.failed += report.failed
        for reason, count in report.skipped_by_reason.items():
            result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + count
        result.departed += report.departed
        result.rate_limited = report.rate_limited
        result.notes += report.notes


def handle_events(
    records: list[dict[str, Any]],
    *,
    x: XAccount,
    ledger: Ledger,
    settings: Settings,
    now: Callable[[], datetime],
    time_left: Callable[[], float],
    run_id: str,
    sleep: Callable[[float], None] = time.sleep,
    wake_up: Callable[[str, float], None] | None = None,
) -> WorkerResult:
    """Handle one SQS batch (the event's "Records"). Raises PersonNeeded errors (the batch is then
    delivered again; every event's effects are idempotent and those handled are skipped)."""
    worker = EventWorker(x=x, ledger=ledger, settings=settings, now=now, time_left=time_left, run_id=run_id, sleep=sleep, wake_up=wake_up)
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event={"Records": records}, record_handler=worker.handle_record, processor=processor)
    result = worker.result
    result.batch_item_failures = [{"itemIdentifier": str(f["itemIdentifier"])} for f in response.get("batchItemFailures", [])]
    worker.note_recent()
    if worker.revoked:
        raise CredentialsRejected("X says the account revoked the app's access (oauth.revoke)")
    try:
        worker.welcome()
    except PersonNeeded:
        raise
    except CourtesyError as exc:
        # Whoever is queued stays queued: the next batch or the scheduled run welcomes them.
        result.notes.append(f"welcoming stopped: {type(exc).__name__}")
        logger.warning("Welcoming after webhook events stopped", extra={"reason": type(exc).__name__, "detail": str(exc)})
    return result
