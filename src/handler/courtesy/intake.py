"""How followers enter the mode's queues: follow observations recorded in the ledger, and
queues another mode left, taken over after a switch.

A source of follows (the scan of the followers list; later, X's follow events) turns what
it saw into ``FollowObservation``s and hands them to ``record_follows``, which applies the
filters and the mode's policy: it knows nothing of how the follows were found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from courtesy.domain import Follower
from courtesy.filters import FollowerFilters
from courtesy.ledger import Known, Ledger
from courtesy.lifecycle import Queue, State
from courtesy.observability import logger
from courtesy.policy import ModePolicy

ADOPT_PER_RUN = 200


@dataclass(frozen=True)
class FollowObservation:
    """A follower seen following, as a source of follows saw them."""

    follower: Follower
    queue_key: str  # their place in the queue (courtesy.domain.queue_key)
    known: Known | None  # what the ledger knew of them when they were seen (None: nothing)


@dataclass
class IntakeResult:
    new_followers: int = 0  # recorded (queued, skipped, or taken back) by this call
    replies_due: int = 0  # followers who wrote first, now owed their welcome (reply mode)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


def is_new(known: Known | None) -> bool:
    """Whether a follower seen following is news to the ledger: unknown, left before their
    welcome (and came back), or wrote before any scan saw them follow."""
    return known is None or known.state in (State.DEPARTED, State.WROTE)


def record_follows(
    observations: Iterable[FollowObservation],
    *,
    ledger: Ledger,
    policy: ModePolicy,
    filters: FollowerFilters,
    now: Callable[[], datetime],
    seen_at: str,
) -> IntakeResult:
    """Record follows in the ledger, in the order given (the oldest follow first, so they
    are welcomed oldest first). ``seen_at``: the time written as when they were seen.

    Every write is a transition from no record, "departed" or "wrote", so an observation of
    a follower the ledger holds in any other state (see ``is_new``) changes nothing."""
    result = IntakeResult()
    for observation in observations:
        follower, key, record = observation.follower, observation.queue_key, observation.known
        wrote = record is not None and record.state == State.WROTE
        if record is not None and record.state == State.DEPARTED:
            # Left before their welcome and came back: welcome them after all.
            fields = {"username": follower.username, "name": follower.name, "queued_at": key, "returned_at": seen_at}
            added = ledger.move("requeue_departed", follower.id, fields=fields, queue=policy.new_followers_wait_in)
        elif reason := filters.reason_to_skip(follower, now()):
            if wrote:
                fields = {"username": follower.username, "name": follower.name, "reason": reason, "skipped_at": seen_at}
                added = ledger.move("skip_writer", follower.id, fields=fields)
            else:
                added = ledger.record("record_skipped", follower, {"reason": reason, "first_seen_at": seen_at})
            if added:
                result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + 1
                logger.info("Follower skipped", extra={"follower_id": follower.id, "reason": reason})
        elif wrote and record is not None:
            queue, key = policy.writer_waits_in(record.asked_at, key, now())
            notable = _notable(filters, follower)
            fields = {"username": follower.username, "name": follower.name, "queued_at": key, "followed_seen_at": seen_at, **notable}
            added = ledger.move("adopt_writer", follower.id, fields=fields, queue=queue)
            if added and queue == Queue.REPLY_DUE:
                result.replies_due += 1
                logger.info("Follower wrote before a scan saw them follow: owed a welcome", extra={"follower_id": follower.id})
        else:
            fields = {"first_seen_at": seen_at, "queued_at": key, **_notable(filters, follower)}
            added = ledger.record("record_new", follower, fields, queue=policy.new_followers_wait_in)
        result.new_followers += int(added)
    return result


def _notable(filters: FollowerFilters, follower: Follower) -> dict[str, str]:
    return {"notable": "true"} if filters.is_notable(follower) else {}


def adopt_queues(ledger: Ledger, policy: ModePolicy) -> None:
    """After a mode switch, followers the old mode queued and did not handle are taken over
    by this one. Nobody handled (welcomed, listed, opted out) is in any of these queues."""
    for source, target in policy.adopts:
        for entry in ledger.queued(source, limit=ADOPT_PER_RUN):
            to = policy.adopted_to(entry.via, entry.asked_at, target)
            if to != source:
                ledger.move("move_queue", entry.follower_id, given=source, queue=to)
