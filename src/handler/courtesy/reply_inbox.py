"""Reply mode's inbox: the account's DM events, each handled once.

Reads ``GET /2/dm_events`` newest first, down to a cursor kept in the ledger's meta (every
event at or below it is handled), and after a burst larger than one run can read, the
older stretches it left ("gaps"), in later runs. A post-baseline follower who writes is
put in the reply queue, owed their one welcome (the welcome cycle sends it); a message
that is an opt-out is recorded at once. Handling an event twice changes nothing, so a
crash before the cursor is saved only means reading again. The rule for each message
(``handle_messages``) is shared with the webhook's dm.received events (courtesy.event_worker),
which handle a message within seconds; this read remains the safety net that reads them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from courtesy.domain import DmEvent, Follower, iso, queue_key
from courtesy.errors import RateLimited, UnexpectedAnswer, XUnavailable
from courtesy.ledger import Known, Ledger, Meta
from courtesy.lifecycle import MESSAGED_STATES, Confirmation, State
from courtesy.observability import logger
from courtesy.opt_out import opt_out_word
from courtesy.policy import VIA_MESSAGE
from courtesy.settings import Settings
from courtesy.x_limits import DM_EVENTS_PAGE_MAX

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

# Inbox pages read per run. With the welcome cycle's 3 reconciliation lookups, within X's
# 15 DM lookups per 15 minutes, so a 15-minute schedule never meets the limit.
INBOX_PAGES_PER_RUN = 8


@dataclass
class InboxResult:
    dm_events_read: int = 0  # inbox events read (each billed)
    opted_out: int = 0
    replies_due: int = 0  # people who wrote and are now owed their welcome
    notes: list[str] = field(default_factory=list)


class ReplyInbox:
    """One run's reading of the inbox (make one per run)."""

    def __init__(self, *, x: XAccount, ledger: Ledger, settings: Settings, now: Callable[[], datetime]):
        self.x = x
        self.ledger = ledger
        self.settings = settings
        self.now = now
        self.result = InboxResult()

    def read(self, meta: Meta) -> InboxResult:
        """Read the account's DM events newer than the cursor (newest first; each event is
        billed), then older stretches a burst left unread. Followers who wrote become owed
        their welcome; opt-outs are recorded. Handling an event twice changes nothing, so
        the cursor is saved with the rest of the run's meta."""
        self._read(meta)
        return self.result

    def _read(self, meta: Meta) -> None:
        if spent := self.x.dm_lookups_spent():
            self.result.notes.append(f"inbox not read: {spent}")
            return
        budget = INBOX_PAGES_PER_RUN
        try:
            if not meta.dm_cursor:
                # The first reply-mode run: messages already there were not written to
                # Courtesy (a person may have answered them). Note where the inbox stands.
                page = self.x.dm_events_page(max_results=1)
                self.result.dm_events_read += len(page.events)
                meta.dm_cursor = page.events[0].id if page.events else "0"
                meta.dm_page_size = 1
                self.result.notes.append("reply mode started: messages from now on are answered")
                return
            cursor = meta.dm_cursor
            newest, token, pages, found = self._read_down(meta, floor=cursor, token=None, budget=budget, size=meta.dm_page_size)
            budget -= pages
            # Sized for a run like this one: a quiet inbox reads one event (the cursor's).
            meta.dm_page_size = min(DM_EVENTS_PAGE_MAX, found // 2 + 1)
            if newest:
                if token:  # the pages ran out before the cursor: read that stretch later
                    meta.dm_gaps.insert(0, [token, cursor])
                meta.dm_cursor = newest
            while meta.dm_gaps and budget > 0:
                gap_token, floor = meta.dm_gaps[0]
                try:
                    _, token, pages, _ = self._read_down(meta, floor=floor, token=gap_token, budget=budget, size=DM_EVENTS_PAGE_MAX)
                except UnexpectedAnswer as exc:  # e.g. X no longer takes the saved page token
                    meta.dm_gaps.pop(0)
                    self.result.notes.append(f"an older stretch of the inbox was given up: {exc}")
                    continue
                budget -= pages
                if token:
                    meta.dm_gaps[0] = [token, floor]
                else:
                    meta.dm_gaps.pop(0)
            if meta.dm_gaps:
                self.result.notes.append("inbox: older messages are read next run")
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            self.result.notes.append(f"inbox reading stopped: {exc}")
            logger.warning("Inbox reading stopped early", extra={"reason": str(exc)})

    def _read_down(self, meta: Meta, *, floor: str, token: str | None, budget: int, size: int) -> tuple[str, str | None, int, int]:
        """Read pages from ``token`` (None: the newest) down to the event ``floor``, handling
        every event above it. Returns (newest id read, token to go on from if the budget ran
        out first else None, pages read, events above the floor)."""
        newest, pages, found = "", 0, 0
        size = max(1, size)
        while pages < budget:
            page = self.x.dm_events_page(max_results=size, token=token, with_senders=self.settings.reply_to_non_followers)
            pages += 1
            self.result.dm_events_read += len(page.events)
            above = [e for e in page.events if int(e.id) > int(floor)]
            if above and not newest:
                newest = above[0].id
            found += len(above)
            self._handle_messages(meta, above)
            if len(above) < len(page.events) or page.next_token is None:
                return newest, None, pages, found
            token = page.next_token
            if pages > 1:  # a burst: larger pages, fewer requests (not at once: one more may be all)
                size = min(DM_EVENTS_PAGE_MAX, size * 2)
        return newest, token, pages, found

    def _handle_messages(self, meta: Meta, events: list[DmEvent]) -> None:
        handled = handle_messages(events, ledger=self.ledger, settings=self.settings, now=self.now, account_id=meta.account_id)
        self.result.opted_out += handled.opted_out
        self.result.replies_due += handled.replies_due


def handle_messages(
    events: list[DmEvent], *, ledger: Ledger, settings: Settings, now: Callable[[], datetime], account_id: str
) -> InboxResult:
    """Reply mode's rule for the account's messages, wherever they were read (this module's
    inbox read, or the webhook's dm.received events: courtesy.event_worker). Only inbound
    messages in the account's 1:1 conversations count. An opt-out is recorded (confirmed
    once if Courtesy wrote to them); a pending follower who writes is owed their welcome;
    a non-follower is answered if the operator asks for it; anyone else not known yet is
    noted as a writer. Every step is an idempotent ledger transition: handling a message
    twice changes nothing. Returns the counts (opted_out, replies_due); message text is
    never logged."""
    result = InboxResult()
    account = account_id
    inbound = [e for e in events if e.sender_id != account and _one_to_one(e, account)]
    known = ledger.known(e.sender_id for e in inbound)
    for event in inbound:  # newest first; the order does not matter (see opt_out)
        sender = event.sender_id
        record = known.get(sender)
        state = record.state if record else None
        if word := opt_out_word(event.text):
            if ledger.opt_out(sender, known_state=state, word=word, now=iso(now()), confirmation=_confirmation(settings, state)):
                result.opted_out += 1
                logger.info("Opted out: never messaged again", extra={"follower_id": sender, "word": word})
            known[sender] = Known(State.OPTED_OUT)
        elif state == State.PENDING:
            asked = iso(event.created_at)
            if ledger.move("ask_reply", sender, fields={"asked_at": asked, "queued_at": queue_key(asked, 0)}):
                result.replies_due += 1
                logger.info("Follower wrote first: owed a welcome", extra={"follower_id": sender})
        elif state is None and settings.reply_to_non_followers:
            asked = iso(event.created_at)
            if ledger.record(
                "record_message_sender",
                Follower(sender, event.sender_username, event.sender_name),
                {"via": VIA_MESSAGE, "first_seen_at": asked, "asked_at": asked, "queued_at": queue_key(asked, 0)},
            ):
                result.replies_due += 1
                known[sender] = Known(State.PENDING)
        elif state in (None, State.WROTE):
            # Not known as a follower yet: maybe they followed since this run's scan, or
            # will soon. A scan that finds them following within a day owes them the welcome.
            ledger.note_writer(sender, asked_at=iso(event.created_at))
            known[sender] = Known(State.WROTE)
        # Anyone else (followed before Courtesy started, welcomed, skipped) is left alone:
        # a person answers them, or nobody.
    return result


def _confirmation(settings: Settings, state: str | None) -> str:
    """Only someone Courtesy has written to gets the one confirmation of their opt-out."""
    if state not in MESSAGED_STATES:
        return Confirmation.NOT_NEEDED
    return Confirmation.DRY_RUN if settings.dry_run else Confirmation.DUE


def one_to_one_conversation_id(a: str, b: str) -> str:
    """The id X gives the 1:1 conversation of two users: their ids, smaller first, joined by "-"."""
    ids = sorted((a, b), key=int)
    return f"{ids[0]}-{ids[1]}"


def _one_to_one(event: DmEvent, account: str) -> bool:
    """A message in the account's 1:1 conversation with its sender, not a group's."""
    if not event.conversation_id:
        return True
    return event.conversation_id == one_to_one_conversation_id(event.sender_id, account)
