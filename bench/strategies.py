"""The strategies compared: Courtesy's real handler, and two reference bots of the kind
that exist today, all reading the same sandbox over HTTP.

Each run returns its RunCost; X-side figures (requests, users, DMs, 429s) come from the
sandbox's own records, except where a strategy says it computed its reads.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from courtesy.errors import RateLimited
from courtesy.observability import logger
from courtesy.x_account import XAccount
from courtesy.x_limits import DM_SEND_PER_15_MIN, DM_SEND_PER_24_H, FOLLOWERS_PAGE_MAX
from sandbox import XSandbox
from tools.local_aws import LOCAL_NAMES, LocalAws
from tools.local_run import LocalFunction, event_for_slot

WELCOME = "Thanks for the follow!"
# Above this many followers the full scan's reads are computed, not made (see FullScanDiff).
FULL_SCAN_REAL_MAX = 5 * FOLLOWERS_PAGE_MAX


@dataclass
class RunCost:
    cpu_seconds: float | None = None  # None: not measured (computed reads)
    db_reads: int | None = None  # None: the strategy keeps its state in memory
    db_writes: int | None = None
    summary: dict | None = None  # Courtesy: the run summary


@dataclass
class ComputedReads:
    """Followers reads a strategy counted instead of making (exact: from the follower count)."""

    requests: int = 0
    users: int = 0
    billed: dict[str, int] = field(default_factory=dict)  # UTC day -> distinct users


def _day(x: XSandbox) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(x.now()))


class Courtesy:
    """The real handler, in-process (tools.local_run), with moto behind it."""

    name = "Courtesy"
    computed: ComputedReads | None = None
    # X's whole DM budget (15 per 15 minutes, 1,440 a day), so every strategy may send as fast as X allows.
    daily_welcome_limit = DM_SEND_PER_24_H

    def __init__(self, x: XSandbox, aws: LocalAws):
        self.x, self.aws = x, aws
        aws.reset()
        aws.create_stack_resources(x.credentials)
        self.function = LocalFunction(
            aws,
            x.base_url,
            clock=lambda: datetime.fromtimestamp(x.now(), UTC),
            DRY_RUN="false",
            MAX_WELCOMES_PER_RUN=str(DM_SEND_PER_15_MIN),
            DAILY_WELCOME_LIMIT=str(self.daily_welcome_limit),
        )

    @classmethod
    def with_daily_limit(cls, limit: int) -> type[Courtesy]:
        """Courtesy with another DailyWelcomeLimit (the template's default is 1,000)."""
        return type(f"Courtesy{limit}", (cls,), {"daily_welcome_limit": limit, "name": f"Courtesy, limit {limit:,}"})

    def run(self, slot: datetime) -> RunCost:
        # EMF metrics are printed to stdout; the logger's stream is pointed elsewhere in bench.run.
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.thread_time()  # this thread only: the sandbox and moto serve from others
            summary = self.function.invoke(event_for_slot(slot))
            cpu = time.thread_time() - started
        return RunCost(cpu, summary["ledger_reads"], summary["ledger_writes"], summary)

    def seen(self) -> set[str]:
        client = self.aws.client("dynamodb")
        paginator = client.get_paginator("scan")
        pages = paginator.paginate(TableName=LOCAL_NAMES["LedgerTable"], ProjectionExpression="follower_id")
        return {item["follower_id"]["S"] for page in pages for item in page["Items"]}


class _ReferenceBot:
    """A typical bot: diff the followers it reads against the ones it knows, then DM the
    new ones oldest first until X answers 429 (the rest wait for the next run)."""

    name = ""
    computed: ComputedReads | None = None

    def __init__(self, x: XSandbox, _aws: Any = None):
        self.x = x
        self.account = XAccount(x.credentials, base_url=x.base_url)
        self.known: set[str] = set()
        self.queue: list[str] = []
        self.started = False

    def read(self) -> list[str]:
        raise NotImplementedError

    def run(self, slot: datetime) -> RunCost:
        started = time.thread_time()
        ids = self.read()
        new = [i for i in ids if i not in self.known]
        self.known.update(new)
        if self.started:  # the first run is the baseline: nobody already there is welcomed
            self.queue.extend(reversed(new))
        self.started = True
        while self.queue:
            try:
                self.account.send_dm(self.queue[0], WELCOME)
            except RateLimited:
                break
            self.queue.pop(0)
        cpu = time.thread_time() - started
        return RunCost(None if self.computed else cpu)

    def seen(self) -> set[str]:
        return self.known


class Newest1000(_ReferenceBot):
    name = "newest 1,000"

    def read(self) -> list[str]:
        page = self.account.followers_page(self.x.account_id, max_results=FOLLOWERS_PAGE_MAX)
        return [f.id for f in page.followers]


class FullScanDiff(_ReferenceBot):
    """Reads every follower every run. Above FULL_SCAN_REAL_MAX followers, doing that for real
    (1,000 requests a run for 1M) would take hours, so the reads are computed exactly from the
    follower count (ceil(n / 1,000) requests, n users) and the list comes from the sandbox in-process."""

    name = "full scan"

    def __init__(self, x: XSandbox, _aws: Any = None):
        super().__init__(x)
        self.computed = ComputedReads() if len(x.follower_ids()) > FULL_SCAN_REAL_MAX else None

    def read(self) -> list[str]:
        if self.computed is None:
            ids, token = [], None
            while True:
                page = self.account.followers_page(self.x.account_id, max_results=FOLLOWERS_PAGE_MAX, token=token)
                ids += [f.id for f in page.followers]
                token = page.next_token
                if token is None:
                    return ids
        ids = self.x.follower_ids()
        reads = self.computed
        reads.requests += math.ceil(len(ids) / FOLLOWERS_PAGE_MAX)
        reads.users += len(ids)
        # Nobody unfollows in the benchmark, so the diff is the newest (n - known) followers,
        # and distinct users per UTC day are the whole list at the day's first read plus each newcomer.
        new = ids[: len(ids) - len(self.known)]
        day = _day(self.x)
        reads.billed[day] = reads.billed[day] + len(new) if day in reads.billed else len(ids)
        return new if self.started else ids


STRATEGIES = (Courtesy, FullScanDiff, Newest1000)


def quiet_courtesy_logs() -> None:
    """The function's JSON logs would drown the tables: send them nowhere."""
    logger.registered_handler.setStream(open("/dev/null", "w"))  # noqa: SIM115 - kept for the process's life
