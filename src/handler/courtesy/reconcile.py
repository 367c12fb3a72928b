"""Sends whose outcome is not known: never resent blindly, settled from the conversation.

A follower a run claimed and did not settle (the run died mid-send) becomes uncertain at
the start of the next run. Each uncertain send is looked for in the 1:1 conversation,
within a small budget of DM lookups per run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from courtesy.domain import iso, parse_time
from courtesy.errors import RateLimited, UnexpectedAnswer, XUnavailable
from courtesy.ledger import Ledger, detail
from courtesy.lifecycle import Queue
from courtesy.observability import logger
from courtesy.x_limits import DM_EVENTS_KEPT_DAYS

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

# Uncertain sends checked per run (DM lookups: 15 per 15 minutes, each event read billed).
RECONCILE_PER_RUN = 3
# Wait this long after a send before looking for it, so X's lookups have caught up.
RECONCILE_AFTER = timedelta(minutes=10)
# One empty conversation is not proof the message does not exist (X's reads lag): a second
# empty lookup at least this long after the first releases the send.
RECONCILE_CONFIRM_AFTER = timedelta(minutes=10)
# X keeps DM events 30 days; past this age a missing message proves nothing.
RECONCILE_WITHIN = timedelta(days=DM_EVENTS_KEPT_DAYS - 1)


@dataclass
class ReconcileResult:
    welcomed: int = 0  # the message was found: recorded as welcomed
    checked_once: int = 0  # one empty lookup: checked again later
    released: int = 0  # two empty lookups a while apart: back in the queue, sent normally
    notes: list[str] = field(default_factory=list)


def settle_interrupted(ledger: Ledger, now: Callable[[], datetime]) -> None:
    """What a crashed run left in flight: a claimed follower whose send may have happened
    becomes uncertain, never resent blindly."""
    # Runs never overlap (reserved concurrency 1), so a follower still
    # "sending" at the start of a run belongs to a run that died mid-send.
    for entry in ledger.queued(Queue.SENDING):
        fields = {"detail": detail("the run that claimed it stopped mid-send"), "uncertain_since": iso(now())}
        ledger.move("settle_interrupted", entry.follower_id, fields=fields)
        logger.warning("Send outcome unknown after an interrupted run", extra={"follower_id": entry.follower_id})


def reconcile_uncertain(x: XAccount, ledger: Ledger, *, account_id: str, now: datetime) -> ReconcileResult:
    """Look in the conversation for each uncertain send: found means welcomed; absent in two
    lookups at least RECONCILE_CONFIRM_AFTER apart means it may be sent normally (one empty
    answer is not evidence enough). Never more than RECONCILE_PER_RUN lookups a run."""
    result = ReconcileResult()
    budget = RECONCILE_PER_RUN
    for entry in ledger.queued(Queue.UNCERTAIN, limit=50):
        sent_at = parse_time(entry.claimed_at) or parse_time(entry.queued_at.split("#")[0])
        if sent_at is None or now - sent_at > RECONCILE_WITHIN:
            # X no longer keeps events that old: it stays uncertain for good, never resent.
            ledger.move("expire_uncertain", entry.follower_id, fields={"expired_at": iso(now)})
            logger.warning("Uncertain send too old to check; never resent", extra={"follower_id": entry.follower_id})
            continue
        checked = parse_time(entry.empty_lookup_at)
        if now - sent_at < RECONCILE_AFTER or budget == 0 or (checked and now - checked < RECONCILE_CONFIRM_AFTER):
            continue
        budget -= 1
        try:
            dm_event_id = x.find_sent_dm(account_id, entry.follower_id, since=sent_at - timedelta(minutes=2))
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            result.notes.append(f"reconciliation stopped: {exc}")
            return result
        if dm_event_id:
            fields = {"welcomed_at": iso(now), "dm_event_id": dm_event_id, "reconciled_at": iso(now)}
            if ledger.move("confirm_uncertain", entry.follower_id, fields=fields):
                result.welcomed += 1
        elif checked is None:
            if ledger.move("note_empty_lookup", entry.follower_id, fields={"empty_lookup_at": iso(now)}):
                result.checked_once += 1
        else:
            fields = {"detail": "no message found in the conversation", "reconciled_at": iso(now)}
            if ledger.move("release_uncertain", entry.follower_id, fields=fields):
                result.released += 1
        logger.info("Uncertain send settled", extra={"follower_id": entry.follower_id, "found": bool(dm_event_id)})
    return result
