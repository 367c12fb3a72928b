"""The welcome modes, each as one policy chosen once from the settings.

``dm``: every new follower waits in the pending queue and is welcomed by DM. ``reply``:
new followers wait in no queue; those who write to the account (its inbox is read each
run) are owed their one welcome, and so, if enabled, are non-followers who write.
``digest``: new followers wait for the daily digest (courtesy.digest); nothing is sent.

Every decision that depends on the mode is a field or a method here, so the welcome
cycle and the units it calls ask the policy instead of comparing mode names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from courtesy.domain import parse_time, queue_key
from courtesy.lifecycle import Queue

# The "via" of a record made for someone who wrote without following (reply mode).
VIA_MESSAGE = "message"
# A message from someone not yet seen to follow owes them a welcome if a scan finds them
# following within this time.
WROTE_BEFORE_FOLLOW_WINDOW = timedelta(days=1)


def is_message_sender(via: str | None) -> bool:
    """Whether a record's ``via`` says it is not a follower's: they wrote (reply mode's
    non-followers answered). Such records are never in a digest, never looked up as
    followers, and greeted with the non-follower templates."""
    return via == VIA_MESSAGE


@dataclass(frozen=True)
class ModePolicy:
    name: str
    # Where a new follower waits (None: in no queue; reply mode, until they write).
    new_followers_wait_in: Queue | None
    # The queue the mode welcomes (digest: the daily digest lists it; nothing is sent).
    welcomes_from: Queue
    # Followers queued under another mode and not handled yet, taken over after a switch:
    # (from queue, to queue); None = in no queue (reply mode: until they write).
    adopts: tuple[tuple[Queue, Queue | None], ...]
    reads_inbox: bool  # the account's DM events are read (followers who wrote are owed a welcome)
    sends: bool  # welcomes (and opt-out confirmations) are sent by DM
    digests: bool  # a daily digest lists the queue, for a person to welcome by hand
    answers_message_senders: bool  # non-followers who wrote may be answered

    def adopted_to(self, via: str | None, asked_at: str | None, target: Queue | None) -> Queue | None:
        """The queue an entry taken over after a mode switch moves to (``target``: the
        adopted pair's)."""
        if is_message_sender(via):  # a non-follower who wrote: only reply mode answers them
            return Queue.REPLY_DUE if self.answers_message_senders else None
        if self.reads_inbox and asked_at:
            return Queue.REPLY_DUE  # wrote, and is owed the reply still
        return target

    def requeue_to(self, via: str | None, asked_at: str | None) -> Queue | None:
        """The queue a requeued follower waits in (None: in no queue), as the function itself
        places followers (the CLI's ``courtesy requeue``)."""
        return self.adopted_to(via, asked_at, self.new_followers_wait_in)

    def writer_waits_in(self, asked_at: str, key: str, now: datetime) -> tuple[Queue | None, str]:
        """Where a follower who wrote before being seen waits, and their queue key: in reply
        mode, owed their welcome if they wrote within the window (keyed by when they wrote)."""
        asked = parse_time(asked_at)
        if self.reads_inbox and asked is not None and now - asked <= WROTE_BEFORE_FOLLOW_WINDOW:
            return Queue.REPLY_DUE, queue_key(asked_at, 0)
        return self.new_followers_wait_in, key


POLICIES = {
    policy.name: policy
    for policy in (
        ModePolicy(
            name="dm",
            new_followers_wait_in=Queue.PENDING,
            welcomes_from=Queue.PENDING,
            adopts=((Queue.REPLY_DUE, Queue.PENDING), (Queue.DIGEST, Queue.PENDING)),
            reads_inbox=False,
            sends=True,
            digests=False,
            answers_message_senders=False,
        ),
        ModePolicy(
            name="reply",
            new_followers_wait_in=None,
            welcomes_from=Queue.REPLY_DUE,
            adopts=((Queue.PENDING, None), (Queue.DIGEST, None)),
            reads_inbox=True,
            sends=True,
            digests=False,
            answers_message_senders=True,
        ),
        ModePolicy(
            name="digest",
            new_followers_wait_in=Queue.DIGEST,
            welcomes_from=Queue.DIGEST,
            adopts=((Queue.PENDING, Queue.DIGEST), (Queue.REPLY_DUE, Queue.DIGEST)),
            reads_inbox=False,
            sends=False,
            digests=True,
            answers_message_senders=False,
        ),
    )
}


def policy_for(mode: str) -> ModePolicy:
    """The policy of a welcome mode ("dm", "reply" or "digest", as settings.welcome_mode)."""
    try:
        return POLICIES[mode]
    except KeyError:
        raise ValueError(f"Unknown welcome mode {mode!r}") from None
