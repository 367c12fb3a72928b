"""One scenario: an account, an arrival pattern and a strategy, run every 15 minutes for
simulated days on a sandbox clock. Returns what happened, from the sandbox's own records."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.traffic import DAY, Pattern
from courtesy.x_limits import PRICE_PER_DM_SENT, PRICE_PER_FOLLOWER_READ
from sandbox import XSandbox

INTERVAL = 15 * 60  # the template's default schedule, rate(15 minutes)
# Day 1 of every simulation starts at this UTC midnight; the baseline run is the slot before it.
START = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class Outcome:
    strategy: str
    account: int
    pattern: str
    days: float
    computed: bool  # followers reads computed from the follower count, not made
    first_run_requests: int
    first_run_users: int
    requests: int
    users_read: int
    billed_per_day: list[int]
    dms: int
    too_many_requests: int  # 429 answers met, any endpoint
    latencies: list[float]  # minutes from follow to welcome, per welcomed follower
    waiting: int  # arrived but not welcomed when the simulation ended
    missed: int  # arrived but never even seen
    arrivals: int
    db_reads: int | None
    db_writes: int | None
    cpu: list[float] = field(default_factory=list)  # seconds per run

    def per_day(self, value: float) -> float:
        return value / self.days

    @property
    def billed(self) -> float:
        return statistics.fmean(self.billed_per_day) if self.billed_per_day else 0.0

    @property
    def bill(self) -> float:
        """Estimated X bill per day: followers read (distinct per UTC day) plus DMs sent."""
        return self.billed * PRICE_PER_FOLLOWER_READ + self.per_day(self.dms) * PRICE_PER_DM_SENT

    def latency(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _set_clock(x: XSandbox, at: datetime) -> None:
    x.advance(at.timestamp() - x.now())


def _followers_requests(x: XSandbox) -> list[dict]:
    return [r for r in x.requests if r["path"].endswith("/followers")]


def _billed_users(x: XSandbox) -> dict[str, int]:
    """Users X bills per UTC day: followers read plus users looked up (both $0.010 in x_limits,
    each counted once a day by the sandbox)."""
    billed = dict(x.billed_users_per_day())
    for day, count in x.billed_lookup_users_per_day().items():
        billed[day] = billed.get(day, 0) + count
    return billed


def simulate(strategy_class, account: int, pattern: Pattern, days: float, aws) -> Outcome:
    baseline_slot = START - timedelta(seconds=INTERVAL)
    with XSandbox(clock=baseline_slot.timestamp) as x:  # a frozen clock, moved only by the simulation
        x.seed_followers(account)
        strategy = strategy_class(x, aws)
        strategy.run(baseline_slot)
        first_requests, first_users = len(_followers_requests(x)), x.users_returned
        if strategy.computed:
            first_requests, first_users = strategy.computed.requests, strategy.computed.users
            strategy.computed.__init__()  # count the days from here
        x.reset_counters()

        arrivals = [baseline_slot + timedelta(seconds=t) for t in pattern.arrivals(days)]
        arrived: list[str] = []
        costs = []
        for k in range(round(days * DAY / INTERVAL)):
            slot = START + timedelta(seconds=k * INTERVAL)
            while len(arrived) < len(arrivals) and arrivals[len(arrived)] <= slot:
                _set_clock(x, arrivals[len(arrived)])
                arrived.append(x.add_follower(username=None)["id"])
            _set_clock(x, slot)
            costs.append(strategy.run(slot))

        dms = x.dm_log
        welcomed = {dm["recipient_id"] for dm in dms}
        latencies = [(datetime.fromisoformat(dm["created_at"]).timestamp() - x.followed_at(dm["recipient_id"])) / 60 for dm in dms]
        seen = strategy.seen()
        reads = strategy.computed
        return Outcome(
            strategy=strategy.name,
            account=account,
            pattern=pattern.name,
            days=days,
            computed=reads is not None,
            first_run_requests=first_requests,
            first_run_users=first_users,
            requests=reads.requests if reads else len(_followers_requests(x)),
            users_read=reads.users if reads else x.users_returned,
            billed_per_day=list((reads.billed if reads else _billed_users(x)).values()),
            dms=len(dms),
            too_many_requests=sum(1 for r in x.requests if r["status"] == 429),
            latencies=latencies,
            waiting=sum(1 for i in arrived if i not in welcomed),
            missed=sum(1 for i in arrived if i not in seen),
            arrivals=len(arrived),
            db_reads=None if costs[0].db_reads is None else sum(c.db_reads for c in costs),
            db_writes=None if costs[0].db_writes is None else sum(c.db_writes for c in costs),
            cpu=[c.cpu_seconds for c in costs if c.cpu_seconds is not None],
        )
