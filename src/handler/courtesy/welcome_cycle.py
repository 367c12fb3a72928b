"""The welcome cycle: one scheduled run, from reading followers to sending welcomes.

Pure decisions over two adapters it is given: ``x`` (courtesy.x_account.XAccount)
and ``ledger`` (courtesy.ledger.Ledger). Order of a run:

1. Settle what a crashed run left in flight: a claimed follower whose send may
   have happened becomes *uncertain*, never resent blindly (courtesy.reconcile).
2. First run: take the baseline (followers already there are never welcomed;
   courtesy.baseline).
3. Later runs: read followers newest first until the remembered head of the list
   is met again; filter the new ones and queue the rest (courtesy.scan, courtesy.intake).
4. Settle uncertain sends from the 1:1 conversation, within a small budget.
5. Welcome the queue oldest first, once X confirms each still follows (a batched
   user lookup for those not met in this run's pages), within the per-run cap, the
   daily limit, X's rate limits and the time left: claim, send, record
   (courtesy.welcoming, courtesy.sending).

Answers from X that contradict what the ledger knows (an empty page for an account
with followers, a list that ends without any follower known to be there) are not
believed: nothing is recorded, the summary says so, and the next run reads again.

The welcome mode (courtesy.policy) decides which queue step 5 welcomes. ``dm``: every
new follower. ``reply``: only followers who wrote to the account (its inbox is read
after step 4, courtesy.reply_inbox, where opt-outs are recorded; they are confirmed in
step 5). ``digest``: none; new followers wait for the daily digest (courtesy.digest),
and nothing is sent.

Each step is a unit that returns what it did; this module adds it to the run's summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from courtesy.baseline import BASELINE_PAGE_SIZE, Baseline
from courtesy.domain import RunSummary, iso
from courtesy.intake import adopt_queues
from courtesy.ledger import Ledger, Meta
from courtesy.lifecycle import Queue
from courtesy.policy import policy_for
from courtesy.reconcile import ReconcileResult, reconcile_uncertain, settle_interrupted
from courtesy.reply_inbox import InboxResult, ReplyInbox
from courtesy.scan import HEAD_MATCH, FollowerScan, ScanResult
from courtesy.sending import Sender, SendReport
from courtesy.settings import Settings
from courtesy.welcoming import Welcomer

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

__all__ = ["BASELINE_PAGE_SIZE", "HEAD_MATCH", "WelcomeCycle"]  # the constants: for the tests

# Seconds kept in hand before the Lambda timeout: no new page or send below this.
TIME_RESERVE_SECONDS = 20.0


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
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.sleep = sleep
        self.x = x
        self.ledger = ledger
        self.settings = settings
        self.now = now
        self.time_left = time_left
        self.policy = policy_for(settings.welcome_mode)
        self.summary = RunSummary(run_id=run_id, dry_run=settings.dry_run, mode=self.policy.name)
        self.started = iso(now())  # one time for the run's queue keys, so they sort by position

    def run(self) -> RunSummary:
        meta = self.ledger.load_meta() or Meta()
        if not meta.account_id:
            meta.account_id = self.x.account_id()
        settle_interrupted(self.ledger, self.now)
        if not meta.baseline_done:
            self.summary.baseline = True
            baseline = Baseline(
                x=self.x, ledger=self.ledger, baseline_mode=self.settings.baseline_mode, now=self.now, out_of_time=self._out_of_time
            )
            self._add_scan(baseline.run(meta))
        else:
            adopt_queues(self.ledger, self.policy)
            scan = self._scan(meta)
            self._add_reconciled(reconcile_uncertain(self.x, self.ledger, account_id=meta.account_id, now=self.now()))
            if self.policy.reads_inbox:
                self._read_inbox(meta, scan)
            if self.policy.sends:
                self._welcome(meta, scan)
        self.summary.pending = self.ledger.count_queued(self.policy.welcomes_from)
        self.summary.uncertain_expired = self.ledger.count_queued(Queue.UNCERTAIN_EXPIRED)
        self.summary.uncertain = self.ledger.count_queued(Queue.UNCERTAIN) + self.summary.uncertain_expired
        self.ledger.save_meta(meta)
        return self.summary

    def _out_of_time(self) -> bool:
        return self.time_left() < TIME_RESERVE_SECONDS

    def _scan(self, meta: Meta) -> ScanResult:
        scan = FollowerScan(
            x=self.x,
            ledger=self.ledger,
            filters=self.settings.filters,
            policy=self.policy,
            now=self.now,
            out_of_time=self._out_of_time,
            started=self.started,
        ).run(meta)
        if scan.head:
            meta.head = scan.head
        if scan.next_page_size is not None:
            meta.next_page_size = scan.next_page_size
        self._add_scan(scan)
        return scan

    def _read_inbox(self, meta: Meta, scan: ScanResult) -> None:
        if not scan.complete:
            # A follower who followed and wrote since the last scan is not recorded yet:
            # reading their message now would leave it unanswered. The next run reads it.
            self.summary.notes.append("inbox not read: the follower scan did not finish")
            return
        self._add_inbox(ReplyInbox(x=self.x, ledger=self.ledger, settings=self.settings, now=self.now).read(meta))

    def _welcome(self, meta: Meta, scan: ScanResult) -> None:
        sender = Sender(
            x=self.x, ledger=self.ledger, now=self.now, run_id=self.summary.run_id, meta=meta, report=SendReport(), sleep=self.sleep
        )
        present = {follower.id: follower for follower in scan.present}
        welcomer = Welcomer(
            sender, settings=self.settings, policy=self.policy, present=present, out_of_time=self._out_of_time, started=self.started
        )
        self._add_sent(welcomer.run())

    # --- adding each unit's result to the run's summary -------------------------

    def _add_scan(self, scan: ScanResult) -> None:
        summary = self.summary
        summary.followers_read += scan.followers_read
        summary.new_followers += scan.new_followers
        summary.replies_due += scan.replies_due
        for reason, count in scan.skipped_by_reason.items():
            summary.count_skip(reason, count)
        summary.presence_lookups += scan.presence_lookups
        summary.scan_complete = summary.scan_complete and scan.complete
        summary.scan_doubted = summary.scan_doubted or scan.doubted
        summary.notes += scan.notes

    def _add_reconciled(self, reconciled: ReconcileResult) -> None:
        self.summary.reconciled_welcomed += reconciled.welcomed
        self.summary.reconciled_checked_once += reconciled.checked_once
        self.summary.reconciled_released += reconciled.released
        self.summary.notes += reconciled.notes

    def _add_inbox(self, inbox: InboxResult) -> None:
        self.summary.dm_events_read += inbox.dm_events_read
        self.summary.opted_out += inbox.opted_out
        self.summary.replies_due += inbox.replies_due
        self.summary.notes += inbox.notes

    def _add_sent(self, sent: SendReport) -> None:
        summary = self.summary
        summary.welcomed += sent.welcomed
        summary.failed += sent.failed
        for reason, count in sent.skipped_by_reason.items():
            summary.count_skip(reason, count)
        summary.confirmations_sent += sent.confirmations_sent
        summary.departed += sent.departed
        summary.presence_lookups += sent.presence_lookups
        summary.rate_limited = summary.rate_limited or sent.rate_limited
        if sent.account_refused:
            summary.account_refused = True
            summary.account_refused_runs = sent.account_refused_runs
        summary.would_welcome += sent.would_welcome
        summary.notes += sent.notes
