"""The baseline: followers already there when Courtesy starts are recorded, never welcomed.

The default reads one page of the newest followers (older ones are never met by a scan,
which stops at the boundary of what is known); ``full`` records the whole list over as
many runs as it takes, resuming from a saved cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from courtesy.domain import FollowersPage, iso
from courtesy.errors import RateLimited, UnexpectedAnswer, XUnavailable
from courtesy.ledger import Ledger, Meta
from courtesy.observability import logger
from courtesy.scan import HEAD_SIZE, MIN_PAGE_SIZE, ScanResult
from courtesy.x_limits import FOLLOWERS_PAGE_MAX

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

# The default baseline reads one page this size, whatever the account's size.
BASELINE_PAGE_SIZE = 50
# A first page shorter than this far below what X's follower count promises is not
# believed (counts include accounts the list leaves out, so a few missing are normal).
BASELINE_SHORTFALL_TOLERANCE = 5
# A full baseline reads at most this many pages per run, then resumes next run.
FULL_BASELINE_PAGES_PER_RUN = 20


class Baseline:
    """One run's part of taking the baseline (make one per run)."""

    def __init__(
        self,
        *,
        x: XAccount,
        ledger: Ledger,
        baseline_mode: str,
        now: Callable[[], datetime],
        out_of_time: Callable[[], bool],
    ):
        self.x = x
        self.ledger = ledger
        self.baseline_mode = baseline_mode
        self.now = now
        self.out_of_time = out_of_time
        self.result = ScanResult()

    def run(self, meta: Meta) -> ScanResult:
        """Record this run's part of the baseline in the ledger and in ``meta`` (baseline_done
        once it is complete)."""
        now = iso(self.now())
        meta.baseline_at = meta.baseline_at or now
        if self.baseline_mode == "newest-page":
            page = self.x.followers_page(meta.account_id, max_results=BASELINE_PAGE_SIZE)
            self.result.followers_read += len(page.followers)
            if not self._last_page_believed(page, asked=BASELINE_PAGE_SIZE):
                return self.result  # the baseline waits: nothing recorded, the next run reads again
            self.ledger.record_baseline(page.followers, now)
            meta.head = [f.id for f in page.followers[:HEAD_SIZE]]
            meta.baseline_done = True
        else:
            self._take_full(meta, now)
        meta.next_page_size = MIN_PAGE_SIZE
        logger.info("Baseline recorded", extra={"complete": meta.baseline_done, "followers_read": self.result.followers_read})
        return self.result

    def _take_full(self, meta: Meta, now: str) -> None:
        token = meta.baseline_cursor or None
        for _ in range(FULL_BASELINE_PAGES_PER_RUN):
            page = self.x.followers_page(meta.account_id, max_results=FOLLOWERS_PAGE_MAX, token=token)
            self.result.followers_read += len(page.followers)
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
            if self.out_of_time():
                break
        self.result.notes.append("full baseline continues next run")

    def _last_page_believed(self, page: FollowersPage, *, asked: int) -> bool:
        """A first page that says the list ends here, with fewer followers than asked for, is
        checked against the account's follower count: X's empty-page answer for an account
        with followers must not become a baseline that takes everyone for new later."""
        if page.next_token is not None or len(page.followers) >= asked:
            return True
        try:
            count = self.x.followers_count()
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            self.result.doubt(f"a short first page could not be checked against the follower count ({exc})")
            return False
        shortfall = min(asked, count) - len(page.followers)
        if (count and not page.followers) or shortfall > BASELINE_SHORTFALL_TOLERANCE:
            self.result.doubt(f"X listed {len(page.followers)} followers but counts {count}")
            return False
        return True
