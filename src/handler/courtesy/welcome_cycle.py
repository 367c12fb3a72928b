"""The welcome cycle: one scheduled run, from reading followers to sending welcomes.

Pure decisions over two adapters it is given: ``x`` (courtesy.x_account.XAccount)
and ``ledger`` (courtesy.ledger.Ledger). Order of a run:

1. Settle what a crashed run left in flight: a claimed follower whose send may
   have happened becomes *uncertain*, never resent blindly.
2. First run: take the baseline (followers already there are never welcomed).
3. Later runs: read followers newest first until the remembered head of the list
   is met again; filter the new ones and queue the rest.
4. Settle uncertain sends from the 1:1 conversation, within a small budget.
5. Welcome the queue oldest first, once X confirms each still follows (a batched
   user lookup for those not met in this run's pages), within the per-run cap, the
   daily limit, X's rate limits and the time left: claim, send, record.

Answers from X that contradict what the ledger knows (an empty page for an account
with followers, a list that ends without any follower known to be there) are not
believed: nothing is recorded, the summary says so, and the next run reads again.

The welcome mode decides which queue step 5 welcomes. ``dm``: every new follower.
``reply``: only followers who wrote to the account (its inbox is read after step 4,
where opt-outs are recorded and confirmed too). ``digest``: none; new followers wait
for the daily digest (courtesy.digest), and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from courtesy.errors import (
    AppNotPermitted,
    CredentialsRejected,
    MessageRejected,
    RateLimited,
    RecipientCannotBeMessaged,
    SendOutcomeUnknown,
    UnexpectedAnswer,
    XUnavailable,
)
from courtesy.filters import BLOCKLISTED, DMS_CLOSED, PROTECTED
from courtesy.ledger import (
    DIGEST_QUEUE,
    EXPIRED_UNCERTAIN_QUEUE,
    OPT_OUT_CONFIRM_QUEUE,
    REPLY_DUE_QUEUE,
    Confirmation,
    Entry,
    Known,
    Ledger,
    Meta,
    State,
    iso,
    queue_key,
)
from courtesy.messages import MessageTemplates
from courtesy.observability import logger
from courtesy.reply_inbox import ReplyInbox
from courtesy.settings import Settings
from courtesy.x_account import Follower, FollowersPage, XAccount, follows_account, parse_time
from courtesy.x_limits import DM_EVENTS_KEPT_DAYS, FOLLOWERS_PAGE_MAX

# The default baseline reads one page this size, whatever the account's size.
BASELINE_PAGE_SIZE = 50
# Each scan remembers the top of the list (the "head", HEAD_SIZE ids). The next scan
# reads until it meets HEAD_MATCH of them again in their remembered order: the boundary
# of what is known. Known followers outside the head do not count: someone who left and
# came back sits at the top, above newer followers, and must not end the scan early;
# head members who came back show up out of order and do not count either. Several
# members, not one, allow for X's order being "subject to eventual consistency".
HEAD_SIZE = 10
HEAD_MATCH = 3
# Smallest page asked for: enough to meet the head and one newcomer. Quiet accounts
# re-read the same few users every run, which X bills once per UTC day.
MIN_PAGE_SIZE = HEAD_MATCH + 1
# When the head has gone (every member left), this many other known followers in a
# row end the scan instead, so it can never run down a million-follower list.
KNOWN_FALLBACK = 25
# A first page shorter than this far below what X's follower count promises is not
# believed (counts include accounts the list leaves out, so a few missing are normal).
BASELINE_SHORTFALL_TOLERANCE = 5
# A full baseline reads at most this many pages per run, then resumes next run.
FULL_BASELINE_PAGES_PER_RUN = 20
# Rounds of presence lookups per run: a round whose candidates turn out to have left is
# followed by another, so departures do not leave a run's sending room unused.
PRESENCE_ROUNDS_PER_RUN = 3
# This many sends in a row refused in the same way (status and problem), to different
# recipients, means X refuses the account or app, not them: stop, and put them back.
ACCOUNT_REFUSAL_STREAK = 3
# Seconds kept in hand before the Lambda timeout: no new page or send below this.
TIME_RESERVE_SECONDS = 20.0
# When X gives no reset time, wait this long before sending again (one DM window).
DEFAULT_DM_BACKOFF_SECONDS = 15 * 60
# A window that resets this close to a run's start counts as reset: X's windows start at
# the first request, a second or two after the schedule's tick, and skipping a whole
# schedule interval for those seconds would halve the welcome rate.
DM_RESET_GRACE_SECONDS = 30
# Uncertain sends checked per run (DM lookups: 15 per 15 minutes, each event read billed).
RECONCILE_PER_RUN = 3
# Wait this long after a send before looking for it, so X's lookups have caught up.
RECONCILE_AFTER = timedelta(minutes=10)
# One empty conversation is not proof the message does not exist (X's reads lag): a second
# empty lookup at least this long after the first releases the send.
RECONCILE_CONFIRM_AFTER = timedelta(minutes=10)
# A message from someone not yet seen to follow owes them a welcome if a scan finds them
# following within this time.
WROTE_BEFORE_FOLLOW_WINDOW = timedelta(days=1)
# X keeps DM events 30 days; past this age a missing message proves nothing.
RECONCILE_WITHIN = timedelta(days=DM_EVENTS_KEPT_DAYS - 1)
# The queue each mode welcomes from (digest: the daily digest lists it; nothing is sent).
MODE_QUEUE = {"dm": State.PENDING, "reply": REPLY_DUE_QUEUE, "digest": DIGEST_QUEUE}
# Followers queued under another mode and not handled yet, taken over after a switch:
# (from queue, to queue); None = in no queue (reply mode: until they write).
ADOPTED = {
    "dm": ((REPLY_DUE_QUEUE, State.PENDING), (DIGEST_QUEUE, State.PENDING)),
    "reply": ((State.PENDING, None), (DIGEST_QUEUE, None)),
    "digest": ((State.PENDING, DIGEST_QUEUE), (REPLY_DUE_QUEUE, DIGEST_QUEUE)),
}
ADOPT_PER_RUN = 200


@dataclass
class RunSummary:
    run_id: str
    dry_run: bool
    baseline: bool = False
    followers_read: int = 0
    new_followers: int = 0
    welcomed: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    pending: int = 0
    uncertain: int = 0
    uncertain_expired: int = 0
    reconciled_welcomed: int = 0
    reconciled_released: int = 0
    departed: int = 0
    mode: str = "dm"
    dm_events_read: int = 0  # reply mode: inbox events read (each billed)
    replies_due: int = 0  # reply mode: followers who wrote and are owed their welcome
    opted_out: int = 0
    confirmations_sent: int = 0
    rate_limited: bool = False
    scan_complete: bool = True
    # X's followers answer contradicted the ledger (an empty page, or a list that ended
    # without any follower known to be there): nothing of it was recorded.
    scan_doubted: bool = False
    presence_lookups: int = 0  # users looked up to confirm queued followers still follow
    reconciled_checked_once: int = 0  # uncertain sends with one empty lookup: checked again later
    account_refused: bool = False  # sending stopped: X refused the account or app, not recipients
    account_refused_runs: int = 0  # consecutive runs stopped that way
    would_welcome: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class WelcomeCycle:
    def __init__(
        self,
        *,
        x: XAccount,
        ledger: Ledger,
        settings: Settings,
        now: Callable[[], datetime],
        time_left: Callable[[], float],
        run_id: str,
    ):
        self.x = x
        self.ledger = ledger
        self.settings = settings
        self.now = now
        self.time_left = time_left
        self.summary = RunSummary(run_id=run_id, dry_run=settings.dry_run, mode=settings.welcome_mode)
        self.mode = settings.welcome_mode
        self.started = iso(now())  # one time for the run's queue keys, so they sort by position
        # What this run has read of the followers list, newest first.
        self.present: dict[str, Follower] = {}  # followers seen in this run's pages, in list order
        self.current: dict[str, Follower] = {}  # queued followers as this run's lookup showed them
        self.position = 0
        self._written_off: dict[str, str] = {}  # refused this run: follower id -> skip reason ("" = failed)

    def run(self) -> RunSummary:
        meta = self.ledger.load_meta() or Meta()
        if not meta.account_id:
            meta.account_id = self.x.account_id()
        self._settle_interrupted()
        if not meta.baseline_done:
            self._take_baseline(meta)
        else:
            self._adopt_queues()
            self._scan(meta)
            self._reconcile_uncertain(meta)
            if self.mode == "reply":
                self._read_inbox(meta)
            if self.mode != "digest":
                self._welcome_backlog(meta)
        self.summary.pending = self.ledger.count_queued(MODE_QUEUE[self.mode])
        self.summary.uncertain_expired = self.ledger.count_queued(EXPIRED_UNCERTAIN_QUEUE)
        self.summary.uncertain = self.ledger.count_queued(State.UNCERTAIN) + self.summary.uncertain_expired
        self.ledger.save_meta(meta)
        return self.summary

    # --- 1. what a crashed run left behind ----------------------------------

    def _settle_interrupted(self) -> None:
        # Runs never overlap (reserved concurrency 1), so a follower still
        # "sending" at the start of a run belongs to a run that died mid-send.
        for entry in self.ledger.queued(State.SENDING):
            self.ledger.mark_uncertain(entry.follower_id, detail="the run that claimed it stopped mid-send", now=iso(self.now()))
            logger.warning("Send outcome unknown after an interrupted run", extra={"follower_id": entry.follower_id})

    def _adopt_queues(self) -> None:
        """After a mode switch, followers the old mode queued and did not handle are taken over
        by this one. Nobody handled (welcomed, listed, opted out) is in any of these queues."""
        for source, target in ADOPTED[self.mode]:
            for entry in self.ledger.queued(source, limit=ADOPT_PER_RUN):
                to = target
                if entry.via == "message":  # a non-follower who wrote: only reply mode answers them
                    to = REPLY_DUE_QUEUE if self.mode == "reply" else None
                elif self.mode == "reply" and entry.asked_at:
                    to = REPLY_DUE_QUEUE  # wrote, and is owed the reply still
                if to != source:
                    self.ledger.move_queue(entry.follower_id, from_queue=source, to_queue=to)

    # --- 2. baseline -----------------------------------------------------------

    def _take_baseline(self, meta: Meta) -> None:
        self.summary.baseline = True
        now = iso(self.now())
        meta.baseline_at = meta.baseline_at or now
        if self.settings.baseline_mode == "newest-page":
            page = self.x.followers_page(meta.account_id, max_results=BASELINE_PAGE_SIZE)
            self.summary.followers_read += len(page.followers)
            if not self._last_page_believed(page, asked=BASELINE_PAGE_SIZE):
                return  # the baseline waits: nothing recorded, the next run reads again
            self.ledger.record_baseline(page.followers, now)
            meta.head = [f.id for f in page.followers[:HEAD_SIZE]]
            meta.baseline_done = True
        else:
            self._take_full_baseline(meta, now)
        meta.next_page_size = MIN_PAGE_SIZE
        logger.info("Baseline recorded", extra={"complete": meta.baseline_done, "followers_read": self.summary.followers_read})

    def _take_full_baseline(self, meta: Meta, now: str) -> None:
        token = meta.baseline_cursor or None
        for _ in range(FULL_BASELINE_PAGES_PER_RUN):
            page = self.x.followers_page(meta.account_id, max_results=FOLLOWERS_PAGE_MAX, token=token)
            self.summary.followers_read += len(page.followers)
            if token is None and not self._last_page_believed(page, asked=FOLLOWERS_PAGE_MAX):
                return
            self.ledger.record_baseline(page.followers, now)
            if token is None:
                meta.head = [f.id for f in page.followers[:HEAD_SIZE]]
            token = page.next_token
            meta.baseline_cursor = token or ""
            # Saved after every page: a crash resumes here instead of paying again.
            self.ledger.save_meta(meta)
            if token is None:
                meta.baseline_done = True
                return
            if self.time_left() < TIME_RESERVE_SECONDS:
                break
        self.summary.notes.append("full baseline continues next run")

    def _last_page_believed(self, page: FollowersPage, *, asked: int) -> bool:
        """A first page that says the list ends here, with fewer followers than asked for, is
        checked against the account's follower count: X's empty-page answer for an account
        with followers must not become a baseline that takes everyone for new later."""
        if page.next_token is not None or len(page.followers) >= asked:
            return True
        try:
            count = self.x.followers_count()
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            self._doubt(f"a short first page could not be checked against the follower count ({exc})")
            return False
        shortfall = min(asked, count) - len(page.followers)
        if (count and not page.followers) or shortfall > BASELINE_SHORTFALL_TOLERANCE:
            self._doubt(f"X listed {len(page.followers)} followers but counts {count}")
            return False
        return True

    def _doubt(self, reason: str) -> None:
        self.summary.scan_complete = False
        self.summary.scan_doubted = True
        self.summary.notes.append(f"X's followers answer not believed: {reason}; nothing recorded, the next run reads again")
        logger.warning("X's followers answer contradicts the ledger; nothing recorded", extra={"reason": reason})

    # --- 3. finding new followers ------------------------------------------

    def _scan(self, meta: Meta) -> None:
        new_before = self.summary.new_followers
        try:
            head = self._read_until_known(meta)
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            # Nothing of this scan was recorded; the next run reads the same again
            # (a same-day re-read is billed once).
            self.summary.scan_complete = False
            self.summary.notes.append(f"follower scan stopped: {exc}")
            logger.warning("Follower scan stopped early", extra={"reason": str(exc)})
            return
        if head:
            meta.head = head
        found = self.summary.new_followers - new_before
        meta.next_page_size = max(MIN_PAGE_SIZE, min(FOLLOWERS_PAGE_MAX, found + found // 2 + HEAD_MATCH + 1))

    def _read_page(self, meta: Meta, *, page_size: int, token: str | None) -> tuple[FollowersPage, dict[str, Known]]:
        """One page of followers, and what the ledger knows of each of them."""
        page = self.x.followers_page(meta.account_id, max_results=page_size, token=token)
        self.summary.followers_read += len(page.followers)
        known = self.ledger.known(f.id for f in page.followers)
        for follower in page.followers:
            self.present[follower.id] = follower
        return page, known

    def _read_until_known(self, meta: Meta) -> list[str]:
        """Read pages newest first until the boundary of what is known, then record the new
        followers found, oldest first. Returns the new head, or [] if nothing was recorded.

        Nothing is written until the boundary is reached, and then the deepest first: a
        crash or an error mid-scan can never leave recorded followers above unrecorded
        ones, which the next scan would take for the boundary and stop at."""
        head = {follower_id: rank for rank, follower_id in enumerate(meta.head)}
        page_size = meta.next_page_size or MIN_PAGE_SIZE
        token: str | None = None
        met: list[str] = []  # head members met in a row in their remembered order
        other_known = 0
        found: list[tuple[Follower, str, Known | None]] = []  # (follower, queue key, what the ledger knew)
        while True:
            page, known = self._read_page(meta, page_size=page_size, token=token)
            for follower in page.followers:
                if len(met) >= HEAD_MATCH or other_known >= KNOWN_FALLBACK:
                    # Past the boundary: unknown users here followed before the
                    # baseline (it records only the newest page), so never new.
                    break
                self.position += 1
                record = known.get(follower.id)
                if follower.id in head:
                    in_order = met and head[follower.id] > head[met[-1]]
                    met = [*met, follower.id] if in_order else [follower.id]
                elif record is None or record.state in (State.DEPARTED, State.WROTE):
                    found.append((follower, queue_key(self.started, self.position), record))
                    other_known = 0
                else:
                    other_known += 1
            at_boundary = len(met) >= HEAD_MATCH or other_known >= KNOWN_FALLBACK
            if at_boundary or page.next_token is None:
                if not at_boundary and not met and not other_known and not self._end_believed(meta):
                    return []
                self._record_found(found)
                return list(self.present)[:HEAD_SIZE]
            if self.time_left() < TIME_RESERVE_SECONDS:
                # Recording only the newer part would hide the older part below it from
                # the next scan; record nothing, and the next run reads it all again.
                self.summary.scan_complete = False
                self.summary.notes.append("follower scan ran out of time; the next run starts it again")
                return []
            token = page.next_token
            # Pages with nothing known yet mean a burst: ask for more at once.
            page_size = MIN_PAGE_SIZE if met or other_known else min(FOLLOWERS_PAGE_MAX, page_size * 2)

    def _end_believed(self, meta: Meta) -> bool:
        """The list ended (or was empty) without a single follower the ledger knows. True only
        if X confirms that none of the remembered head still follows."""
        if not meta.head:
            return True  # nothing known to contradict it (the account had no followers)
        try:
            users = self.x.lookup_users(meta.head)
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            self._doubt(f"the list ended without any known follower, and X could not be asked about them ({exc})")
            return False
        self.summary.presence_lookups += len(meta.head)
        still = sum(1 for user in users.values() if user is not None and follows_account(user))
        if still:
            self._doubt(f"the list ended without any known follower, yet {still} of them still follow")
            return False
        return True

    def _record_found(self, found: list[tuple[Follower, str, Known | None]]) -> None:
        filters = self.settings.filters
        for follower, key, record in reversed(found):  # the deepest (oldest follow) first
            wrote = record is not None and record.state == State.WROTE
            if record is not None and record.state == State.DEPARTED:
                # Left before their welcome and came back: welcome them after all.
                added = self.ledger.requeue_departed(follower, now=self.started, queued_at=key, queue=self._queue_for_new())
            elif reason := filters.reason_to_skip(follower, self.now()):
                if wrote:
                    added = self.ledger.skip_writer(follower, reason=reason, now=self.started)
                else:
                    added = self.ledger.record_skipped(follower, reason=reason, now=self.started)
                if added:
                    self._count_skip(reason)
                    logger.info("Follower skipped", extra={"follower_id": follower.id, "reason": reason})
            elif wrote and record is not None:
                queue, key = self._queue_for_writer(record, key)
                notable = filters.is_notable(follower)
                added = self.ledger.adopt_writer(follower, queued_at=key, now=self.started, notable=notable, queue=queue)
                if added and queue == REPLY_DUE_QUEUE:
                    self.summary.replies_due += 1
                    logger.info("Follower wrote before a scan saw them follow: owed a welcome", extra={"follower_id": follower.id})
            else:
                notable = filters.is_notable(follower)
                added = self.ledger.queue_new(follower, queued_at=key, now=self.started, notable=notable, queue=self._queue_for_new())
            self.summary.new_followers += int(added)

    def _queue_for_new(self) -> str | None:
        """Where a new follower waits: reply mode keeps them in no queue until they write."""
        return None if self.mode == "reply" else MODE_QUEUE[self.mode]

    def _queue_for_writer(self, record: Known, key: str) -> tuple[str | None, str]:
        """Where a follower who wrote before being seen waits, and their queue key: in reply
        mode, owed their welcome if they wrote within the window (keyed by when they wrote)."""
        asked = parse_time(record.asked_at)
        if self.mode == "reply":
            if asked is not None and self.now() - asked <= WROTE_BEFORE_FOLLOW_WINDOW:
                return REPLY_DUE_QUEUE, queue_key(record.asked_at, 0)
            return None, key
        return self._queue_for_new(), key

    def _count_skip(self, reason: str) -> None:
        self.summary.skipped += 1
        self.summary.skipped_by_reason[reason] = self.summary.skipped_by_reason.get(reason, 0) + 1

    def _confirm_following(self, entries: list[Entry]) -> list[Entry]:
        """The entries X confirms still follow the account. Those met in this run's pages need
        no question; the others are asked about in one batched user lookup. Someone X shows as
        not following (or no longer there) has left: marked departed, never messaged; if they
        follow again, a scan queues them again."""
        ask = [e.follower_id for e in entries if e.follower_id not in self.present and e.via != "message"]
        if ask:
            if spent := self.x.users_lookup_spent():
                self.summary.notes.append(f"{len(ask)} queued followers wait: {spent}")
                return [e for e in entries if e.follower_id not in ask]
            try:
                users = self.x.lookup_users(ask)
            except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
                self.summary.notes.append(f"{len(ask)} queued followers wait: presence lookup stopped: {exc}")
                return [e for e in entries if e.follower_id not in ask]
            self.summary.presence_lookups += len(ask)
            for follower_id in ask:
                user = users.get(follower_id)
                if user is not None and follows_account(user):
                    self.current[follower_id] = user
                elif self.ledger.mark_departed(follower_id, now=iso(self.now())):
                    self.summary.departed += 1
                    logger.info("Follower left before their welcome", extra={"follower_id": follower_id})
        return [e for e in entries if e.via == "message" or e.follower_id in self.present or e.follower_id in self.current]

    # --- 4. settling uncertain sends ------------------------------------------

    def _reconcile_uncertain(self, meta: Meta) -> None:
        """Look in the conversation for each uncertain send: found means welcomed; absent in two
        lookups at least RECONCILE_CONFIRM_AFTER apart means it may be sent normally (one empty
        answer is not evidence enough). Never more than RECONCILE_PER_RUN lookups a run."""
        budget = RECONCILE_PER_RUN
        now = self.now()
        for entry in self.ledger.queued(State.UNCERTAIN, limit=50):
            sent_at = parse_time(entry.claimed_at) or parse_time(entry.queued_at.split("#")[0])
            if sent_at is None or now - sent_at > RECONCILE_WITHIN:
                # X no longer keeps events that old: it stays uncertain for good, never resent.
                self.ledger.expire_uncertain(entry.follower_id, now=iso(now))
                logger.warning("Uncertain send too old to check; never resent", extra={"follower_id": entry.follower_id})
                continue
            checked = parse_time(entry.empty_lookup_at)
            if now - sent_at < RECONCILE_AFTER or budget == 0 or (checked and now - checked < RECONCILE_CONFIRM_AFTER):
                continue
            budget -= 1
            try:
                dm_event_id = self.x.find_sent_dm(meta.account_id, entry.follower_id, since=sent_at - timedelta(minutes=2))
            except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
                self.summary.notes.append(f"reconciliation stopped: {exc}")
                return
            if dm_event_id:
                if self.ledger.confirm_uncertain(entry.follower_id, dm_event_id=dm_event_id, now=iso(now)):
                    self.summary.reconciled_welcomed += 1
            elif checked is None:
                if self.ledger.note_empty_lookup(entry.follower_id, now=iso(now)):
                    self.summary.reconciled_checked_once += 1
            elif self.ledger.release_uncertain(entry.follower_id, now=iso(now)):
                self.summary.reconciled_released += 1
            logger.info("Uncertain send settled", extra={"follower_id": entry.follower_id, "found": bool(dm_event_id)})

    # --- 4b. reply mode: the inbox ---------------------------------------------------

    def _read_inbox(self, meta: Meta) -> None:
        if not self.summary.scan_complete:
            # A follower who followed and wrote since the last scan is not recorded yet:
            # reading their message now would leave it unanswered. The next run reads it.
            self.summary.notes.append("inbox not read: the follower scan did not finish")
            return
        ReplyInbox(x=self.x, ledger=self.ledger, settings=self.settings, summary=self.summary, now=self.now).read(meta)

    def _confirm_opt_outs(self, meta: Meta, room: int) -> tuple[int, bool]:
        """Send each new opt-out its one confirmation, before any welcome. Returns the sends
        used, and whether sending may go on this run."""
        used = 0
        for entry in self.ledger.queued(OPT_OUT_CONFIRM_QUEUE, limit=room):
            if self.settings.dry_run or self.time_left() < TIME_RESERVE_SECONDS:
                break
            if spent := self.x.dm_sends_spent():
                return used, self._stop_for_rate_limit(meta, spent)
            run_id = self.summary.run_id
            if not self.ledger.claim_confirmation(entry.follower_id, run_id=run_id, now=iso(self.now())):
                continue
            current = self.present.get(entry.follower_id)
            name, username = (current.name, current.username) if current else (entry.name, entry.username)
            text = self.settings.opt_out_reply.for_follower(entry.follower_id, name=name, username=username).text
            outcome, detail = Confirmation.SENT, ""
            try:
                self.x.send_dm(entry.follower_id, text)
            except (RateLimited, XUnavailable) as exc:
                self.ledger.settle_confirmation(
                    entry.follower_id, run_id=run_id, outcome=Confirmation.DUE, now=iso(self.now()), detail=str(exc)
                )
                if isinstance(exc, RateLimited):
                    return used, self._stop_for_rate_limit(meta, exc)
                self.summary.notes.append(f"stopped sending: {exc}")
                return used, False
            except SendOutcomeUnknown as exc:
                # Left "sending": maybe sent, and never sent again.
                self.summary.notes.append(f"stopped sending: {exc}")
                logger.warning("Opt-out confirmation outcome unknown; not resending", extra={"follower_id": entry.follower_id})
                return used, False
            except (CredentialsRejected, AppNotPermitted):
                self.ledger.settle_confirmation(entry.follower_id, run_id=run_id, outcome=Confirmation.DUE, now=iso(self.now()))
                raise
            except RecipientCannotBeMessaged as exc:
                outcome, detail = Confirmation.UNDELIVERABLE, str(exc)
            except MessageRejected as exc:
                outcome, detail = Confirmation.FAILED, str(exc)
            self.ledger.settle_confirmation(entry.follower_id, run_id=run_id, outcome=outcome, now=iso(self.now()), detail=detail)
            if outcome == Confirmation.SENT:
                used += 1
                meta.daily_count += 1
                self.ledger.save_daily_count(meta.daily_day, meta.daily_count)
                self.summary.confirmations_sent += 1
                logger.info("Opt-out confirmed", extra={"follower_id": entry.follower_id})
        return used, True

    # --- 5. welcoming --------------------------------------------------------

    def _welcome_backlog(self, meta: Meta) -> None:
        now = self.now()
        today = now.date().isoformat()
        if meta.daily_day != today:
            meta.daily_day, meta.daily_count = today, 0
        room = min(self.settings.max_welcomes_per_run, self.settings.daily_welcome_limit - meta.daily_count)
        if room <= 0:
            self.summary.notes.append("daily welcome limit reached")
            return
        if not self.settings.dry_run and meta.dm_blocked_until > now.timestamp() + DM_RESET_GRACE_SECONDS:
            self.summary.rate_limited = True
            self.summary.notes.append("X's DM rate limit is still spent; waiting for its reset")
            return
        used, go_on = self._confirm_opt_outs(meta, room)
        room -= used
        if room <= 0 or not go_on:
            return
        handled: set[str] = set()
        for _ in range(PRESENCE_ROUNDS_PER_RUN):
            asked_for = room + len(handled)
            queued = self.ledger.queued(MODE_QUEUE[self.mode], limit=asked_for)
            fresh = [e for e in queued if e.follower_id not in handled]
            handled.update(e.follower_id for e in fresh)
            departed_before = self.summary.departed
            for entry in self._confirm_following(fresh):
                if self.time_left() < TIME_RESERVE_SECONDS:
                    self.summary.notes.append("stopped sending: Lambda time nearly spent")
                    return
                if not self._welcome_entry(meta, entry):
                    return
                room -= 1
            # Another round only when departures left room unused and more may be queued.
            if room <= 0 or self.summary.departed == departed_before or len(queued) < asked_for:
                return

    def _welcome_entry(self, meta: Meta, entry: Entry) -> bool:
        """Welcome one queued follower who is confirmed to follow (or preview it in a dry run).
        Returns False when sending must stop for this run."""
        # Names change: greet people by the name X gave this run.
        current = self.present.get(entry.follower_id) or self.current.get(entry.follower_id)
        name, username = (current.name, current.username) if current else (entry.name, entry.username)
        filters = self.settings.filters
        reason = BLOCKLISTED if filters.is_blocked(entry.follower_id, username) else None
        if current and current.profile.get("receives_your_dm") is False:
            reason = reason or DMS_CLOSED  # closed since they were queued: X would refuse
        if current and filters.skip_protected and current.profile.get("protected") is True:
            reason = reason or PROTECTED
        if reason:
            if self.ledger.skip_pending(entry.follower_id, reason=reason, now=iso(self.now())):
                self._count_skip(reason)
            return True
        welcome = self._templates_for(entry).for_follower(entry.follower_id, name=name, username=username)
        if self.settings.dry_run:
            preview = {
                "follower_id": entry.follower_id,
                "username": username,
                "template_id": welcome.template_id,
                "notable": entry.notable,
                "text": welcome.text,
            }
            self.summary.would_welcome.append(preview)
            logger.info("Dry run: would welcome", extra=preview)
            return True
        return self._welcome_one(meta, entry.follower_id, welcome.template_id, welcome.text)

    def _templates_for(self, entry: Entry) -> MessageTemplates:
        if entry.via == "message":
            return self.settings.non_follower_templates
        return self.settings.notable_templates if entry.notable else self.settings.templates

    def _welcome_one(self, meta: Meta, follower_id: str, template_id: str, text: str) -> bool:
        """Claim, send, record. Returns False when sending must stop for this run."""
        spent = self.x.dm_sends_spent()
        if spent is not None:
            return self._stop_for_rate_limit(meta, spent)
        run_id = self.summary.run_id
        if not self.ledger.claim(follower_id, run_id=run_id, template_id=template_id, now=iso(self.now())):
            logger.info("Follower already claimed elsewhere", extra={"follower_id": follower_id})
            return True
        try:
            dm_event_id = self.x.send_dm(follower_id, text)
        except RateLimited as exc:
            self.ledger.release(follower_id, run_id=run_id, detail=str(exc))
            return self._stop_for_rate_limit(meta, exc)
        except (RecipientCannotBeMessaged, MessageRejected) as exc:
            return self._refused(meta, follower_id, exc)
        except XUnavailable as exc:
            self.ledger.release(follower_id, run_id=run_id, detail=str(exc))
            self.summary.failed += 1
            self.summary.notes.append(f"stopped sending: {exc}")
            logger.warning("X unavailable; follower stays queued", extra={"follower_id": follower_id, "reason": str(exc)})
            return False
        except SendOutcomeUnknown as exc:
            self.ledger.mark_uncertain(follower_id, run_id=run_id, detail=str(exc), now=iso(self.now()))
            self.summary.failed += 1
            self.summary.notes.append(f"stopped sending: {exc}")
            logger.warning("DM outcome unknown; not resending", extra={"follower_id": follower_id, "reason": str(exc)})
            return False
        except (CredentialsRejected, AppNotPermitted):
            # Provably not sent: put the follower back, then fail the run for a person to fix.
            self.ledger.release(follower_id, run_id=run_id, detail="credentials or app permission problem")
            raise
        self.ledger.mark_welcomed(follower_id, run_id=run_id, dm_event_id=dm_event_id, now=iso(self.now()))
        # X took a message: whatever was refused before was about those recipients.
        meta.refusals, meta.account_refusal, meta.account_refused_runs = {}, "", 0
        meta.daily_count += 1
        self.ledger.save_daily_count(meta.daily_day, meta.daily_count)
        self.summary.welcomed += 1
        logger.info("Welcomed", extra={"follower_id": follower_id, "template_id": template_id, "dm_event_id": dm_event_id})
        return True

    def _refused(self, meta: Meta, follower_id: str, exc: RecipientCannotBeMessaged | MessageRejected) -> bool:
        """X refused this send. Recorded at once as that recipient's (or message's) problem,
        never retried; but refusals in the same way (status and problem) to several different
        recipients in a row are X refusing the account or app: those are put back in the
        queue and sending stops. Returns False when sending must stop for this run."""
        recipient = isinstance(exc, RecipientCannotBeMessaged)
        state = State.UNDELIVERABLE if recipient else State.FAILED
        run_id, now = self.summary.run_id, iso(self.now())
        if recipient:
            self.ledger.mark_undeliverable(follower_id, run_id=run_id, detail=str(exc), now=now)
            self._count_skip(DMS_CLOSED)
            logger.info("Recipient cannot be messaged", extra={"follower_id": follower_id, "reason": str(exc)})
        else:
            self.ledger.mark_failed(follower_id, run_id=run_id, detail=str(exc), now=now)
            self.summary.failed += 1
            logger.error("X rejected the welcome message", extra={"follower_id": follower_id, "reason": str(exc)})
        self._written_off[follower_id] = DMS_CLOSED if recipient else ""
        signature = f"{type(exc).__name__}: {exc}"
        if signature == meta.account_refusal:
            # Refused just as the account was in an earlier run: this send was the probe.
            return self._account_refused(meta, signature, [[follower_id, state]])
        people = meta.refusals.get("people", []) if meta.refusals.get("signature") == signature else []
        people = [p for p in people if p[0] != follower_id] + [[follower_id, state]]
        meta.refusals = {"signature": signature, "people": people}
        if len(people) >= ACCOUNT_REFUSAL_STREAK:
            return self._account_refused(meta, signature, people)
        return True

    def _account_refused(self, meta: Meta, signature: str, people: list[list[str]]) -> bool:
        """Put the followers of a refusal streak back in the queue (at its end, so a streak that
        was really about them cannot block the others) and stop sending for this run."""
        queue, now = MODE_QUEUE[self.mode], iso(self.now())
        for follower_id, state in people:
            if self.ledger.reopen_refused(follower_id, expected=state, queue=queue, queued_at=queue_key(self.started, 0), now=now):
                self._uncount_refusal(follower_id)
        meta.refusals, meta.account_refusal = {}, signature
        meta.account_refused_runs += 1
        self.summary.account_refused = True
        self.summary.account_refused_runs = meta.account_refused_runs
        self.summary.notes.append(
            f"stopped sending: X refused {len(people)} recipients in a row in the same way ({signature}); a problem of the "
            "account or app, not of them: they wait in the queue"
        )
        logger.error(
            "X refuses the account's DMs; sending stopped",
            extra={"refusal": signature, "followers_requeued": len(people), "runs_in_a_row": meta.account_refused_runs},
        )
        return False

    def _uncount_refusal(self, follower_id: str) -> None:
        """A follower counted as skipped or failed this run who went back to the queue."""
        if follower_id not in self._written_off:
            return
        reason = self._written_off.pop(follower_id)
        if reason:
            self.summary.skipped -= 1
            self.summary.skipped_by_reason[reason] -= 1
            if not self.summary.skipped_by_reason[reason]:
                del self.summary.skipped_by_reason[reason]
        else:
            self.summary.failed -= 1

    def _stop_for_rate_limit(self, meta: Meta, exc: RateLimited) -> bool:
        reset_at = exc.reset_at or (self.now() + timedelta(seconds=DEFAULT_DM_BACKOFF_SECONDS)).timestamp()
        meta.dm_blocked_until = reset_at
        self.summary.rate_limited = True
        self.summary.notes.append(f"stopped sending: {exc}")
        logger.info("DM rate limit reached; the queue waits", extra={"reset_at": reset_at, "usage_capped": exc.usage_capped})
        return False
