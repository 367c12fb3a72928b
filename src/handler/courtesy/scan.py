"""Finding new followers: read the followers list newest first until the boundary of what
is known, then record what was found (courtesy.intake).

Answers from X that contradict what the ledger knows (an empty page for an account with
followers, a list that ends without any follower known to be there) are not believed:
nothing is recorded, the result says so, and the next run reads again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from courtesy.domain import Follower, FollowersPage, follows_account, queue_key
from courtesy.errors import RateLimited, UnexpectedAnswer, XUnavailable
from courtesy.filters import FollowerFilters
from courtesy.intake import FollowObservation, is_new, record_follows
from courtesy.ledger import Known, Ledger, Meta
from courtesy.observability import logger
from courtesy.policy import ModePolicy
from courtesy.x_limits import FOLLOWERS_PAGE_MAX

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

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


@dataclass
class ScanResult:
    """What reading the followers list found (a scan, or the baseline)."""

    present: list[Follower] = field(default_factory=list)  # followers seen in this run's pages, in list order
    head: list[str] = field(default_factory=list)  # the new head of the list ([]: nothing recorded, keep the old)
    next_page_size: int | None = None  # the first page size for the next scan (None: keep it)
    followers_read: int = 0
    new_followers: int = 0
    replies_due: int = 0  # followers who wrote first, found following: owed their welcome (reply mode)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    presence_lookups: int = 0  # users looked up to check a list that ended without anyone known
    complete: bool = True
    doubted: bool = False  # X's answer contradicted the ledger: nothing of it was recorded
    notes: list[str] = field(default_factory=list)

    def doubt(self, reason: str) -> None:
        self.complete = False
        self.doubted = True
        self.notes.append(f"X's followers answer not believed: {reason}; nothing recorded, the next run reads again")
        logger.warning("X's followers answer contradicts the ledger; nothing recorded", extra={"reason": reason})


class FollowerScan:
    """One run's scan of the followers list (make one per run)."""

    def __init__(
        self,
        *,
        x: XAccount,
        ledger: Ledger,
        filters: FollowerFilters,
        policy: ModePolicy,
        now: Callable[[], datetime],
        out_of_time: Callable[[], bool],
        started: str,
    ):
        self.x = x
        self.ledger = ledger
        self.filters = filters
        self.policy = policy
        self.now = now
        self.out_of_time = out_of_time
        self.started = started  # the run's time: its queue keys sort by position
        self.result = ScanResult()
        self._present: dict[str, Follower] = {}  # newest first

    def run(self, meta: Meta) -> ScanResult:
        result = self.result
        try:
            head = self._read_until_known(meta)
        except (XUnavailable, UnexpectedAnswer, RateLimited) as exc:
            # Nothing of this scan was recorded; the next run reads the same again
            # (a same-day re-read is billed once).
            result.complete = False
            result.notes.append(f"follower scan stopped: {exc}")
            logger.warning("Follower scan stopped early", extra={"reason": str(exc)})
        else:
            result.head = head
            found = result.new_followers
            result.next_page_size = max(MIN_PAGE_SIZE, min(FOLLOWERS_PAGE_MAX, found + found // 2 + HEAD_MATCH + 1))
        result.present = list(self._present.values())
        return result

    def _read_page(self, meta: Meta, *, page_size: int, token: str | None) -> tuple[FollowersPage, dict[str, Known]]:
        """One page of followers, and what the ledger knows of each of them."""
        page = self.x.followers_page(meta.account_id, max_results=page_size, token=token)
        self.result.followers_read += len(page.followers)
        known = self.ledger.known(f.id for f in page.followers)
        for follower in page.followers:
            self._present[follower.id] = follower
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
        position = 0
        found: list[FollowObservation] = []
        while True:
            page, known = self._read_page(meta, page_size=page_size, token=token)
            for follower in page.followers:
                if len(met) >= HEAD_MATCH or other_known >= KNOWN_FALLBACK:
                    # Past the boundary: unknown users here followed before the
                    # baseline (it records only the newest page), so never new.
                    break
                position += 1
                record = known.get(follower.id)
                if follower.id in head:
                    in_order = met and head[follower.id] > head[met[-1]]
                    met = [*met, follower.id] if in_order else [follower.id]
                elif is_new(record):
                    found.append(FollowObservation(follower, queue_key(self.started, position), record))
                    other_known = 0
                else:
                    other_known += 1
            at_boundary = len(met) >= HEAD_MATCH or other_known >= KNOWN_FALLBACK
            if at_boundary or page.next_token is None:
                if not at_boundary and not met and not other_known and not self._end_believed(meta):
                    return []
                self._record(found)
                return list(self._present)[:HEAD_SIZE]
            if self.out_of_time():
                # Recording only the newer part would hide the older part below it from
                # the next scan; record nothing, and the next run reads it all again.
                self.result.complete = False
                self.result.notes.append("follower scan ran out of time; the next run starts it again")
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
            self.result.doubt(f"the list ended without any known follower, and X could not be asked about them ({exc})")
            return False
        self.result.presence_lookups += len(meta.head)
        still = sum(1 for user in users.values() if user is not None and follows_account(user))
        if still:
            self.result.doubt(f"the list ended without any known follower, yet {still} of them still follow")
            return False
        return True

    def _record(self, found: list[FollowObservation]) -> None:
        recorded = record_follows(
            reversed(found),  # the deepest (oldest follow) first
            ledger=self.ledger,
            policy=self.policy,
            filters=self.filters,
            now=self.now,
            seen_at=self.started,
        )
        self.result.new_followers += recorded.new_followers
        self.result.replies_due += recorded.replies_due
        for reason, count in recorded.skipped_by_reason.items():
            self.result.skipped_by_reason[reason] = self.result.skipped_by_reason.get(reason, 0) + count
