"""The ledger's lifecycle, in one table: every move a follower's record can make.

A *state* is what has happened to a follower; a *queue* is what waits to happen next
(the sparse ``queue-index`` lists each queue oldest first). ``TRANSITIONS`` is the only
place the moves are written: courtesy.ledger applies them as conditional writes, the
in-memory store used by the preview and the unit tests applies the same rows, and the
README's lifecycle diagram is checked against them (tests/unit/test_lifecycle.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
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


class Queue(StrEnum):
    PENDING = "pending"  # dm mode: waiting for their welcome
    SENDING = "sending"  # claimed: a run that dies leaves them here, settled as uncertain
    UNCERTAIN = "uncertain"  # sends to look for in the conversation
    UNCERTAIN_EXPIRED = "uncertain-expired"  # too old to check (X keeps DM events 30 days): never resent
    REPLY_DUE = "reply-due"  # reply mode: wrote to the account, owed their one welcome
    DIGEST = "digest"  # digest mode: waiting for the next digest
    DIGEST_LISTING = "digest-listing"  # in a digest being published
    OPT_OUT_CONFIRM = "opt-out-confirm"  # opted out; their one confirmation is still to be sent


class Confirmation(StrEnum):
    """Where an opt-out's one confirmation message stands."""

    DUE = "due"
    SENDING = "sending"  # a send started; if the run died it is never resent (none is better than two)
    SENT = "sent"
    DRY_RUN = "dry-run"  # opted out during a dry run: recorded, nothing sent
    NOT_NEEDED = "not-needed"  # Courtesy never wrote to them: nothing to confirm, nothing sent
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"


# States in which a person has had a message from Courtesy: only they are sent an opt-out
# confirmation. Everyone else opts out silently (an automated answer would be the first
# automated message they ever got).
MESSAGED_STATES = (State.WELCOMED,)

NEW = "new"  # "from" of a transition that creates the record: only if the ledger has none
GONE = "gone"  # "to" of a transition that removes the record (an operator's undo)
CHOSEN = "chosen"  # the queue depends on the welcome mode: the caller names it (None: no queue)
KEEP = "keep"  # the state or queue is left as it is
ANY = "any"  # "from" of a transition open to every state
GIVEN = "given"  # a condition's value the caller gives (None: the attribute is absent)


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]  # states it starts from (NEW: no record yet); several: the caller says which
    to: str  # the state it ends in (GONE: the record is removed; KEEP: unchanged)
    queue: str | None  # a Queue, CHOSEN, KEEP, or None (out of every queue)
    by_run: bool = False  # only the run (or digest) that claimed the follower may make it
    # Conditions beyond the state, as (attribute, operator, value): "=" and "<>" (absent counts
    # as different), "absent", and "<" (earlier than the value the transition writes there).
    when: tuple[tuple[str, str, str | None], ...] = ()
    who: str = "function"  # who makes it: "function", "operator" (the courtesy CLI) or "both"
    why: str = ""
    removes: tuple[str, ...] = ()  # attributes dropped


S, Q = State, Queue
ANY_BUT_OPTED_OUT = tuple(s for s in State if s != State.OPTED_OUT)

TRANSITIONS: tuple[Transition, ...] = (
    # --- seeing followers (the scan) ---
    Transition("record_baseline", (NEW,), S.BASELINE, None, why="followed before Courtesy started"),
    Transition("record_new", (NEW,), S.PENDING, CHOSEN, why="a new follower, in the mode's queue"),
    Transition("record_skipped", (NEW,), S.SKIPPED, None, why="a new follower the filters turn away"),
    Transition("requeue_departed", (S.DEPARTED,), S.PENDING, CHOSEN, why="left before their welcome, followed again"),
    Transition("adopt_writer", (S.WROTE,), S.PENDING, CHOSEN, why="wrote first; a scan now sees them follow"),
    Transition("skip_writer", (S.WROTE,), S.SKIPPED, None, why="wrote first; now following, and filtered out"),
    # --- welcoming: claim, send, record ---
    Transition("skip_pending", (S.PENDING,), S.SKIPPED, None, why="blocked, DMs closed or protected since queued"),
    Transition("mark_departed", (S.PENDING,), S.DEPARTED, None, why="X says they no longer follow"),
    Transition("claim", (S.PENDING,), S.SENDING, Q.SENDING, why="a run takes them; the send follows"),
    Transition("mark_welcomed", (S.SENDING,), S.WELCOMED, None, by_run=True, why="X took the DM"),
    Transition("mark_undeliverable", (S.SENDING,), S.UNDELIVERABLE, None, by_run=True, why="X refused the recipient"),
    Transition("mark_failed", (S.SENDING,), S.FAILED, None, by_run=True, why="X refused the message"),
    Transition("mark_uncertain", (S.SENDING,), S.UNCERTAIN, Q.UNCERTAIN, by_run=True, why="the request left; no answer"),
    Transition("settle_interrupted", (S.SENDING,), S.UNCERTAIN, Q.UNCERTAIN, why="the claiming run died mid-send"),
    Transition("release", (S.SENDING,), S.PENDING, Q.PENDING, by_run=True, why="provably not sent"),
    # --- settling uncertain sends ---
    Transition("confirm_uncertain", (S.UNCERTAIN,), S.WELCOMED, None, why="the DM is in the conversation"),
    Transition("note_empty_lookup", (S.UNCERTAIN,), S.UNCERTAIN, Q.UNCERTAIN, why="not found once: looked for again later"),
    Transition("release_uncertain", (S.UNCERTAIN,), S.PENDING, Q.PENDING, why="not found twice, a while apart"),
    Transition("expire_uncertain", (S.UNCERTAIN,), S.UNCERTAIN, Q.UNCERTAIN_EXPIRED, why="too old to check: never resent"),
    # --- refusals that were about the account, or fixed by a person ---
    Transition(
        "reopen_refused",
        (S.UNDELIVERABLE, S.FAILED),
        S.PENDING,
        CHOSEN,
        who="both",
        why="X refused the account, not them; or a person fixed the cause (courtesy requeue)",
    ),
    # --- welcome modes ---
    Transition("move_queue", (S.PENDING,), S.PENDING, CHOSEN, when=(("queue", "=", GIVEN),), why="taken over after a mode switch"),
    Transition(
        "ask_reply", (S.PENDING,), S.PENDING, Q.REPLY_DUE, when=(("queue", "<>", Q.REPLY_DUE),), why="a follower wrote (reply mode)"
    ),
    Transition("note_writer", (NEW,), S.WROTE, None, why="someone not seen following wrote (reply mode)"),
    Transition("renote_writer", (S.WROTE,), S.WROTE, None, when=(("asked_at", "<", None),), why="they wrote again"),
    Transition("record_message_sender", (NEW,), S.PENDING, Q.REPLY_DUE, why="a non-follower wrote: answered once"),
    Transition("start_listing", (S.PENDING,), S.LISTING, Q.DIGEST_LISTING, when=(("queue", "=", Q.DIGEST),), why="in a digest"),
    Transition("relist", (S.LISTING,), S.LISTING, Q.DIGEST_LISTING, why="a digest died mid-publish: listed again, marked"),
    Transition("mark_listed", (S.LISTING,), S.LISTED, None, by_run=True, why="the digest part was published"),
    Transition("release_listing", (S.LISTING,), S.PENDING, Q.DIGEST, by_run=True, why="provably not published"),
    # --- opting out: from any state, or before the ledger knew them ---
    Transition("opt_out", (NEW, *ANY_BUT_OPTED_OUT), S.OPTED_OUT, CHOSEN, why='wrote "stop": never messaged again'),
    Transition(
        "claim_confirmation",
        (S.OPTED_OUT,),
        S.OPTED_OUT,
        None,
        when=(("confirmation", "=", Confirmation.DUE),),
        why="their one confirmation is being sent",
    ),
    Transition(
        "settle_confirmation",
        (S.OPTED_OUT,),
        S.OPTED_OUT,
        CHOSEN,
        by_run=True,
        when=(("confirmation", "=", Confirmation.SENDING),),
        why="sent or refused; back to due if provably not sent",
    ),
    # --- the operator's commands (courtesy block, unblock, thanked) ---
    Transition("block", (NEW, S.PENDING, S.DEPARTED), S.SKIPPED, None, when=(("queue", "=", GIVEN),), who="operator", why="courtesy block"),
    Transition(
        "unblock_pending",
        (S.SKIPPED,),
        S.PENDING,
        CHOSEN,
        when=(("reason", "=", "blocklisted"), ("blocked_from", "=", S.PENDING)),
        who="operator",
        why="courtesy unblock: back in the queue the block took them from",
        removes=("reason", "blocked_from", "blocked_at", "skipped_at", "blocked_queue"),
    ),
    Transition(
        "unblock_departed",
        (S.SKIPPED,),
        S.DEPARTED,
        None,
        when=(("reason", "=", "blocklisted"), ("blocked_from", "=", S.DEPARTED)),
        who="operator",
        why="courtesy unblock",
        removes=("reason", "blocked_from", "blocked_at", "skipped_at", "blocked_queue"),
    ),
    Transition(
        "forget_blocked",
        (S.SKIPPED,),
        GONE,
        None,
        when=(("reason", "=", "blocklisted"), ("blocked_from", "=", "unknown")),
        who="operator",
        why="courtesy unblock of someone blocked before the ledger knew them",
    ),
    Transition(
        "mark_thanked",
        (ANY,),
        KEEP,
        KEEP,
        when=(("notable", "=", "true"), ("thanked_at", "absent", None)),
        who="operator",
        why="courtesy thanked: a notable follower thanked by hand",
    ),
)

BY_NAME = {t.name: t for t in TRANSITIONS}


def edges() -> list[tuple[str, str, str]]:
    """(from, to, transition) for every move between states (NEW and GONE included; moves that
    keep the state, such as marking a follower thanked, are left out): the diagram's arrows."""
    out = []
    for t in TRANSITIONS:
        out += [(str(source), str(t.to), t.name) for source in t.sources if t.to != KEEP]
    return out


def diagram() -> str:
    """The lifecycle as a Mermaid state diagram (the README's; a test keeps them the same)."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for source, to, name in edges():
        arrows.setdefault((source, to), []).append(name)
    lines = ["stateDiagram-v2"]
    for (source, to), names in arrows.items():
        start = "[*]" if source == NEW else source
        end = "[*]" if to == GONE else to
        lines.append(f"    {start} --> {end}: {', '.join(names)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(diagram())
