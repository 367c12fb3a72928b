"""The welcome cycle: one scheduled run, from reading followers to sending welcomes.

Pure decisions over two adapters it is given: ``x`` (courtesy.x_account.XAccount)
and ``ledger`` (courtesy.ledger.Ledger). Order of a run:

1. Settle what a crashed run left in flight: a claimed follower whose send may
   have happened becomes *uncertain*, never resent blindly.
2. First run: take the baseline (followers already there are never welcomed).
3. Later runs: read followers newest first until the remembered head of the list
   is met again; filter the new ones and queue the rest.
4. Settle uncertain sends from the 1:1 conversation, within a small budget.
5. Welcome the queue oldest first, once each is confirmed as still following,
   within the per-run cap, the daily limit, X's rate limits and the time left:
   claim, send, record.

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
from courtesy.filters import BLOCKLISTED, DMS_CLOSED
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
from courtesy.x_account import Follower, FollowersPage, XAccount, parse_time
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
# A queued follower not met in a run's pages has left once this many of the followers
# who were just below them when they were queued have been read.
DEPARTED_MATCH = 2
# A full baseline reads at most this many pages per run, then resumes next run.
FULL_BASELINE_PAGES_PER_RUN = 20
# Pages read past the scan to check that older queued followers still follow
# (200, 400, 800, 1,000, ...: about 6,000 followers deep at most).
PRESENCE_PAGES_PER_RUN = 8
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
        self.next_token: str | None = None  # where reading can go on
        self.reached_end = False  # a page said there is nothing further down
        self.position = 0

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

    # --- 3. finding new followers ------------------------------------------

    def _scan(self, meta: Meta) -> None:
        new_before = self.summary.new_followers
        try:
            head = self._read_until_known(meta)
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            # Nothing of this scan was recorded; the next run reads the same again
            # (a same-day re-read is billed once). The queue waits for a run that can
            # confirm its followers still follow.
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
        self.next_token = page.next_token
        self.reached_end = page.next_token is None
        return page, known

    def _read_until_known(self, meta: Meta) -> list[str]:
        """Read pages newest first until the boundary of what is known, then record the new
        followers found, oldest first. Returns the new head, or [] if the scan ran out of time.

        Nothing is written until the boundary is reached, and then the deepest first: a
        crash or an error mid-scan can never leave recorded followers above unrecorded
        ones, which the next scan would take for the boundary and stop at."""
        head = {follower_id: rank for rank, follower_id in enumerate(meta.head)}
        page_size = meta.next_page_size or MIN_PAGE_SIZE
        token: str | None = None
        met: list[str] = []  # head members met in a row in their remembered order
        other_known = 0
        found: list[tuple[Follower, str, bool]] = []  # (follower, queue key, came back after leaving)
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
                elif record is None or record.state == State.DEPARTED:
                    found.append((follower, queue_key(self.started, self.position), record is not None))
                    other_known = 0
                else:
                    other_known += 1
            if len(met) >= HEAD_MATCH or other_known >= KNOWN_FALLBACK or page.next_token is None:
                self._record_found(found, boundary=met)
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

    def _record_found(self, found: list[tuple[Follower, str, bool]], *, boundary: list[str]) -> None:
        filters = self.settings.filters
        for follower, key, returning in reversed(found):  # the deepest (oldest follow) first
            if returning:
                # Left before their welcome and came back: welcome them after all.
                added = self.ledger.requeue_departed(
                    follower, now=self.started, queued_at=key, boundary=boundary, queue=self._queue_for_new()
                )
            elif reason := filters.reason_to_skip(follower, self.now()):
                if added := self.ledger.record_skipped(follower, reason=reason, now=self.started):
                    self._count_skip(reason)
                    logger.info("Follower skipped", extra={"follower_id": follower.id, "reason": reason})
            else:
                notable = filters.is_notable(follower)
                added = self.ledger.queue_new(
                    follower, queued_at=key, boundary=boundary, now=self.started, notable=notable, queue=self._queue_for_new()
                )
            self.summary.new_followers += int(added)

    def _queue_for_new(self) -> str | None:
        """Where a new follower waits: reply mode keeps them in no queue until they write."""
        return None if self.mode == "reply" else MODE_QUEUE[self.mode]

    def _count_skip(self, reason: str) -> None:
        self.summary.skipped += 1
        self.summary.skipped_by_reason[reason] = self.summary.skipped_by_reason.get(reason, 0) + 1

    def _still_following(self, meta: Meta, candidates: list[Entry]) -> list[Entry]:
        """The candidates who still follow the account. One not in this run's pages is looked
        for further down the list; once DEPARTED_MATCH of the followers who were just below
        them when they were queued have been read without meeting them, they have left:
        marked departed, not messaged."""
        pages = 0
        while True:
            confirmed, unseen = [], []
            for entry in candidates:
                if entry.follower_id in self.present:
                    confirmed.append(entry)
                elif self.reached_end or (
                    entry.boundary and sum(i in self.present for i in entry.boundary) >= min(DEPARTED_MATCH, len(entry.boundary))
                ):
                    if self.ledger.mark_departed(entry.follower_id, now=iso(self.now())):
                        self.summary.departed += 1
                        logger.info("Follower left before their welcome", extra={"follower_id": entry.follower_id})
                else:
                    unseen.append(entry)
            if not unseen:
                return confirmed
            if pages >= PRESENCE_PAGES_PER_RUN or not self.present or self.time_left() < TIME_RESERVE_SECONDS:
                self.summary.notes.append(f"{len(unseen)} queued followers not confirmed as followers yet; they wait")
                return confirmed
            pages += 1
            try:
                # Growing pages: a backlog a few hundred deep is not read a thousand at a time.
                self._read_page(meta, page_size=min(FOLLOWERS_PAGE_MAX, 100 * 2**pages), token=self.next_token)
            except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
                self.summary.notes.append(f"presence check stopped: {exc}")
                return confirmed
            candidates = confirmed + unseen

    # --- 4. settling uncertain sends ------------------------------------------

    def _reconcile_uncertain(self, meta: Meta) -> None:
        """Look in the conversation for each uncertain send: found means welcomed, absent
        means it may be sent normally. Never more than RECONCILE_PER_RUN lookups a run."""
        budget = RECONCILE_PER_RUN
        now = self.now()
        for entry in self.ledger.queued(State.UNCERTAIN, limit=50):
            sent_at = parse_time(entry.claimed_at) or parse_time(entry.queued_at.split("#")[0])
            if sent_at is None or now - sent_at > RECONCILE_WITHIN:
                # X no longer keeps events that old: it stays uncertain for good, never resent.
                self.ledger.expire_uncertain(entry.follower_id, now=iso(now))
                logger.warning("Uncertain send too old to check; never resent", extra={"follower_id": entry.follower_id})
                continue
            if now - sent_at < RECONCILE_AFTER or budget == 0:
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
        queued = self.ledger.queued(MODE_QUEUE[self.mode], limit=room)
        # Non-followers who wrote (reply mode) are not in the followers list to look for.
        confirmed = {e.follower_id for e in self._still_following(meta, [e for e in queued if e.via != "message"])}
        candidates = [e for e in queued if e.via == "message" or e.follower_id in confirmed]
        for entry in candidates:
            if self.time_left() < TIME_RESERVE_SECONDS:
                self.summary.notes.append("stopped sending: Lambda time nearly spent")
                return
            # Names change: greet people by the name they have now when this run read it.
            current = self.present.get(entry.follower_id)
            name, username = (current.name, current.username) if current else (entry.name, entry.username)
            reason = BLOCKLISTED if self.settings.filters.is_blocked(entry.follower_id, username) else None
            if current and current.profile.get("receives_your_dm") is False:
                reason = reason or DMS_CLOSED  # closed since they were queued: X would refuse
            if reason:
                if self.ledger.skip_pending(entry.follower_id, reason=reason, now=iso(self.now())):
                    self._count_skip(reason)
                continue
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
                continue
            if not self._welcome_one(meta, entry.follower_id, welcome.template_id, welcome.text):
                return

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
        except RecipientCannotBeMessaged as exc:
            self.ledger.mark_undeliverable(follower_id, run_id=run_id, detail=str(exc), now=iso(self.now()))
            self._count_skip(DMS_CLOSED)
            logger.info("Recipient cannot be messaged", extra={"follower_id": follower_id, "reason": str(exc)})
            return True
        except MessageRejected as exc:
            self.ledger.mark_failed(follower_id, run_id=run_id, detail=str(exc), now=iso(self.now()))
            self.summary.failed += 1
            logger.error("X rejected the welcome message", extra={"follower_id": follower_id, "reason": str(exc)})
            return True
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
        meta.daily_count += 1
        self.ledger.save_daily_count(meta.daily_day, meta.daily_count)
        self.summary.welcomed += 1
        logger.info("Welcomed", extra={"follower_id": follower_id, "template_id": template_id, "dm_event_id": dm_event_id})
        return True

    def _stop_for_rate_limit(self, meta: Meta, exc: RateLimited) -> bool:
        reset_at = exc.reset_at or (self.now() + timedelta(seconds=DEFAULT_DM_BACKOFF_SECONDS)).timestamp()
        meta.dm_blocked_until = reset_at
        self.summary.rate_limited = True
        self.summary.notes.append(f"stopped sending: {exc}")
        logger.info("DM rate limit reached; the queue waits", extra={"reset_at": reset_at, "usage_capped": exc.usage_capped})
        return False
