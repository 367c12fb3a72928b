"""Deep backlogs (`python -m bench --only backlog`): more new followers than a day's welcomes.

Two traffics, each run for DAYS simulated days with the real handler (dm mode, live,
MaxWelcomesPerRun=15) at DailyWelcomeLimit 1,000 (the template's default; `--limits 1000,1440`
adds X's whole allowance), beside the reference bots on the same traffic:

    A  growth: a 50,000-follower account gains 3,000 a day, busiest in the afternoon (UTC)
    B  wave:   7,000 follow a 20,000-follower account at once (09:50-10:00 on day 1)

Every figure comes from the sandbox's records (its DM log, its request log, the users each
endpoint returned, billed once per UTC day), except the full scan's reads, computed exactly
from the follower count as in bench.strategies. The simulations run in separate processes
(two at a time): each process has its own sandbox and moto, and the handler's CPU work is
single-threaded.
"""

from __future__ import annotations

import bisect
import contextlib
import multiprocessing
import os
import re
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.fast_moto import faster_queries
from bench.report import markdown_table
from bench.simulate import INTERVAL, START, _set_clock
from bench.strategies import Courtesy, FullScanDiff, Newest1000, quiet_courtesy_logs
from bench.traffic import DAY, GROWTH, WAVE, Pattern
from courtesy.x_limits import DM_SEND_PER_15_MIN, DM_SEND_PER_24_H, PRICE_PER_DM_SENT, PRICE_PER_FOLLOWER_READ, PRICE_PER_USER_LOOKUP
from sandbox import XSandbox
from tools.local_aws import LocalAws, load_template

DAYS = 3
# DailyWelcomeLimit: the template's default (1,000), and X's whole allowance (1,440 a day).
# Each limit is two more simulations of about 8 minutes of CPU: 1,440 is asked for with --limits.
DEFAULT_DAILY_LIMIT = int(load_template()["Parameters"]["DailyWelcomeLimit"]["Default"])
LIMITS = (DEFAULT_DAILY_LIMIT,)
# The goal: billed users a day (followers read + users looked up) within this of the day's traffic.
GOAL_PER_NEW, GOAL_CONSTANT = 1.5, 100


# X's price per user returned by GET /2/users?ids= (never an owned read).
PRICE_PER_LOOKUP_USER = PRICE_PER_USER_LOOKUP


@dataclass(frozen=True)
class Traffic:
    key: str
    account: int
    pattern: Pattern

    def describe(self) -> str:
        return f"{self.key}: {self.account:,} followers, {self.pattern.name} ({self.pattern.describe()})"


TRAFFIC = {t.key: t for t in (Traffic("A", 50_000, GROWTH), Traffic("B", 20_000, WAVE))}


@dataclass
class Day:
    day: str
    new: int  # followers who arrived this UTC day
    sent: int  # DMs in the sandbox's log
    expected: int | None  # Courtesy: the sum over the day's runs of what each could send
    per_run: list[int]  # DMs of each run that could send (expected > 0)
    idle: int  # runs that could send and sent nothing
    doubles: int  # DMs to someone already DMed
    backlog_end: int  # arrived, not welcomed, at the day's end
    followers_raw: int
    lookup_raw: int
    followers_billed: int
    lookup_billed: int
    lookup_requests: int
    too_many: int  # 429s, any endpoint
    idle_notes: Counter = field(default_factory=Counter)

    @property
    def billed(self) -> int:
        return self.followers_billed + self.lookup_billed

    @property
    def dollars(self) -> float:
        return self.followers_billed * PRICE_PER_FOLLOWER_READ + self.lookup_billed * PRICE_PER_LOOKUP_USER + self.sent * PRICE_PER_DM_SENT

    @property
    def goal_ratio(self) -> float:
        return self.billed / (GOAL_PER_NEW * self.new + self.sent + GOAL_CONSTANT)


@dataclass
class Result:
    traffic: str
    strategy: str
    limit: int | None  # Courtesy's DailyWelcomeLimit
    computed: bool  # followers reads computed, not made (full scan)
    days: list[Day]
    missed: int  # arrived, never seen by the strategy
    waiting: int  # arrived, not welcomed at the end
    seconds: float


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def simulate_backlog(traffic_key: str, strategy: str, limit: int | None = None) -> Result:
    """One traffic, one strategy ("courtesy", "full scan", "newest 1,000"), DAYS days."""
    began = time.monotonic()
    quiet_courtesy_logs()
    traffic = TRAFFIC[traffic_key]
    strategy_class = {"courtesy": Courtesy, "full scan": FullScanDiff, "newest 1,000": Newest1000}[strategy]
    if strategy == "courtesy":
        strategy_class = Courtesy.with_daily_limit(limit or DEFAULT_DAILY_LIMIT)
    baseline_slot = START - timedelta(seconds=INTERVAL)
    with contextlib.ExitStack() as stack:
        stack.enter_context(faster_queries())
        aws = stack.enter_context(LocalAws()) if strategy == "courtesy" else None
        x = stack.enter_context(XSandbox(clock=baseline_slot.timestamp))  # frozen: moved only here
        x.seed_followers(traffic.account)
        bot = strategy_class(x, aws)
        bot.run(baseline_slot)
        if bot.computed:
            bot.computed.__init__()  # count the days from here
        x.reset_counters()

        # Day 1 of the traffic is the first UTC day of runs (the baseline is the evening before).
        arrivals = [START.timestamp() + t for t in traffic.pattern.arrivals(DAYS)]
        arrived: list[str] = []
        notes: dict[float, str] = {}  # slot -> the run's notes (Courtesy)
        ends: list[dict[str, int]] = []  # cumulative counters at each day's end
        runs_per_day = DAY // INTERVAL
        for k in range(DAYS * runs_per_day):
            slot = START + timedelta(seconds=k * INTERVAL)
            while len(arrived) < len(arrivals) and arrivals[len(arrived)] <= slot.timestamp():
                _set_clock(x, datetime.fromtimestamp(arrivals[len(arrived)], slot.tzinfo))
                arrived.append(x.add_follower(username=None)["id"])
            _set_clock(x, slot)
            cost = bot.run(slot)
            if cost.summary is not None:
                notes[slot.timestamp()] = "; ".join(cost.summary.get("notes") or [])
            if (k + 1) % runs_per_day == 0:
                ends.append(
                    {
                        "followers_raw": bot.computed.users if bot.computed else x.users_returned,
                        "lookup_raw": x.lookup_users_returned,
                        "requests": len(x.requests),
                    }
                )
        dms = x.dm_log
        seen = bot.seen()
        welcomed = {dm["recipient_id"] for dm in dms}
        days = _days(
            arrivals=arrivals,
            dms=dms,
            requests=x.requests,
            ends=ends,
            notes=notes,
            followers_billed=bot.computed.billed if bot.computed else x.billed_users_per_day(),
            lookup_billed=x.billed_lookup_users_per_day(),
            limit=limit if strategy == "courtesy" else None,
        )
        return Result(
            traffic=traffic_key,
            strategy=bot.name,
            limit=limit if strategy == "courtesy" else None,
            computed=bot.computed is not None,
            days=days,
            missed=sum(1 for i in arrived if i not in seen),
            waiting=sum(1 for i in arrived if i not in welcomed),
            seconds=time.monotonic() - began,
        )


def _is_lookup(request: dict) -> bool:
    return request.get("endpoint") == "users_lookup" or (request["path"].rstrip("/") == "/2/users" and "ids" in request["query"])


def _days(*, arrivals, dms, requests, ends, notes, followers_billed, lookup_billed, limit) -> list[Day]:
    """Per UTC day, from the sandbox's records. Each DM carries its run's slot as its time (the
    clock stands still during a run), so the DM log tells what each run sent."""
    dm_times = [_ts(dm["created_at"]) for dm in dms]
    sent_by_slot = Counter(dm_times)
    welcomed_at: dict[str, float] = {}  # recipient -> first DM
    doubles_at: list[float] = []
    for dm, t in zip(dms, dm_times, strict=True):
        if dm["recipient_id"] in welcomed_at:
            doubles_at.append(t)
        else:
            welcomed_at[dm["recipient_id"]] = t
    first_dms = sorted(welcomed_at.values())
    out, previous = [], {"followers_raw": 0, "lookup_raw": 0, "requests": 0}
    for d, end in enumerate(ends):
        day_start = START.timestamp() + d * DAY
        slots = [day_start + k * INTERVAL for k in range(DAY // INTERVAL)]
        name = datetime.fromtimestamp(day_start, START.tzinfo).date().isoformat()
        expected, per_run, idle, idle_notes = (0 if limit else None), [], 0, Counter()
        for slot in slots:
            # What this run could send: min(X's 15 per 15 minutes, the backlog as it stood,
            # DailyWelcomeLimit left today, X's 1,440 per 24 h left).
            backlog = bisect.bisect_right(arrivals, slot) - bisect.bisect_left(first_dms, slot)
            sent_today = bisect.bisect_left(dm_times, slot) - bisect.bisect_left(dm_times, day_start)
            last_24h = bisect.bisect_left(dm_times, slot) - bisect.bisect_right(dm_times, slot - DAY)
            room = min(DM_SEND_PER_15_MIN, backlog, DM_SEND_PER_24_H - last_24h)
            if limit:
                room = max(0, min(room, limit - sent_today))
                expected += room
            if room > 0:
                per_run.append(sent_by_slot[slot])
                if not sent_by_slot[slot]:
                    idle += 1
                    idle_notes[re.sub(r"\d[\d,]*", "N", notes.get(slot, ""))] += 1
        day_end = day_start + DAY
        day_requests = requests[previous["requests"] : end["requests"]]
        out.append(
            Day(
                day=name,
                new=bisect.bisect_left(arrivals, day_end) - bisect.bisect_left(arrivals, day_start),
                sent=bisect.bisect_left(dm_times, day_end) - bisect.bisect_left(dm_times, day_start),
                expected=expected,
                per_run=per_run,
                idle=idle,
                doubles=sum(1 for t in doubles_at if day_start <= t < day_end),
                backlog_end=bisect.bisect_left(arrivals, day_end) - bisect.bisect_left(first_dms, day_end),
                followers_raw=end["followers_raw"] - previous["followers_raw"],
                lookup_raw=end["lookup_raw"] - previous["lookup_raw"],
                followers_billed=followers_billed.get(name, 0),
                lookup_billed=lookup_billed.get(name, 0),
                lookup_requests=sum(1 for r in day_requests if _is_lookup(r)),
                too_many=sum(1 for r in day_requests if r["status"] == 429),
                idle_notes=idle_notes,
            )
        )
        previous = end
    return out


# ---- running and printing ------------------------------------------------------------------


def _jobs(limits: tuple[int, ...]) -> list[tuple[str, str, int | None]]:
    courtesy = [(t, "courtesy", limit) for t in TRAFFIC for limit in limits]
    bots = [(t, s, None) for t in TRAFFIC for s in ("full scan", "newest 1,000")]
    return courtesy + bots  # the long ones first


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _check(d: Day) -> str:
    problems = []
    if d.expected is not None and d.sent < d.expected:
        problems.append(f"{d.expected - d.sent:,} short")
    if d.idle:
        problems.append(f"{d.idle} idle runs")
    if d.doubles:
        problems.append(f"{d.doubles} doubles")
    if d.goal_ratio > 1:
        problems.append("over budget")
    return "ok" if not problems else "FAIL: " + ", ".join(problems)


COURTESY_HEADERS = [
    "traffic", "limit", "day", "new", "DMs sent", "expected", "DMs/run min/med/max", "idle runs", "double",
    "followers read", "looked up", "followers billed", "lookup billed", "billed total", "lookup req",
    "429s", "X $/day", "billed ÷ goal", "backlog at end", "check",
]  # fmt: skip
BOT_HEADERS = ["traffic", "day", "strategy", "new", "DMs sent", "idle runs", "users read", "billed", "X $/day",
               "billed ÷ Courtesy's", "billed ÷ goal"]  # fmt: skip


def _courtesy_row(r: Result, d: Day, index: int) -> list[str]:
    runs = f"{min(d.per_run)}/{statistics.median(d.per_run):g}/{max(d.per_run)}" if d.per_run else "—"
    return [
        r.traffic, _n(r.limit or 0), str(index + 1), _n(d.new), _n(d.sent), _n(d.expected or 0), runs, _n(d.idle), _n(d.doubles),
        _n(d.followers_raw), _n(d.lookup_raw), _n(d.followers_billed), _n(d.lookup_billed), _n(d.billed), _n(d.lookup_requests),
        _n(d.too_many), f"{d.dollars:,.2f}", f"{d.goal_ratio:.2f}", _n(d.backlog_end), _check(d),
    ]  # fmt: skip


def _bot_row(r: Result, d: Day, index: int, courtesy: Day | None) -> list[str]:
    star = "*" if r.computed else ""
    ratio = f"{d.billed / courtesy.billed:,.1f}×" if courtesy and courtesy.billed else "—"
    return [
        r.traffic, str(index + 1), r.strategy, _n(d.new), _n(d.sent), _n(d.idle), _n(d.followers_raw) + star,
        _n(d.billed) + star, f"{d.dollars:,.2f}", ratio, f"{d.goal_ratio:.1f}",
    ]  # fmt: skip


def run_backlog(limits: tuple[int, ...] = LIMITS, workers: int | None = None) -> None:
    began = time.monotonic()
    workers = workers or min(2, os.cpu_count() or 1)
    print(
        f"\nDeep backlogs: {DAYS} simulated days, a run every {INTERVAL // 60} minutes after a baseline run the evening before;"
        f" Courtesy in dm mode, live, MaxWelcomesPerRun={DM_SEND_PER_15_MIN}, DailyWelcomeLimit "
        + " and ".join(f"{limit:,}" for limit in limits)
        + ". Traffic: "
        + "; ".join(t.describe() for t in TRAFFIC.values())
        + f". {workers} simulations at a time, each in its own process:",
        flush=True,
    )
    results: list[Result] = []
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs servers' threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(simulate_backlog, *job) for job in _jobs(limits)]
        for future in futures:
            r = future.result()
            results.append(r)
            print(f"  {r.traffic}, {r.strategy}: {r.seconds:.0f} s", flush=True)
    courtesy = [r for r in results if r.limit is not None]
    bots = [r for r in results if r.limit is None]
    print(
        "\nCourtesy per UTC day. expected = the sum over the day's runs of min(15, the backlog at the run,"
        " DailyWelcomeLimit left today, X's 1,440 per 24 h left): min(backlog, X's DM allowance,"
        " DailyWelcomeLimit), run by run. DMs/run: over the runs that could send. idle runs: runs with a"
        " backlog and an open DM window that sent nothing (must be 0). double: DMs to someone already"
        " DMed, from the sandbox's DM log (must be 0). read = users returned (raw); billed = distinct per"
        f" UTC day. X $: ${PRICE_PER_FOLLOWER_READ} per follower billed, ${PRICE_PER_LOOKUP_USER} per user"
        f" looked up, ${PRICE_PER_DM_SENT} per DM. billed ÷ goal: billed total ÷ ({GOAL_PER_NEW} × new + DMs"
        f" sent + {GOAL_CONSTANT}), must be ≤ 1.\n"
    )
    print(markdown_table(COURTESY_HEADERS, [_courtesy_row(r, d, i) for r in courtesy for i, d in enumerate(r.days)]))
    for r in courtesy:
        notes = Counter()
        for d in r.days:
            notes.update(d.idle_notes)
        summary = f"- {r.traffic}, limit {r.limit:,}: {r.waiting:,} waiting at the end, {r.missed:,} never seen"
        if notes:
            summary += "; idle runs' notes: " + "; ".join(f'{n}× "{text or "(none)"}"' for text, n in notes.most_common(2))
        print(summary)
    reference = {r.traffic: r for r in courtesy if r.limit == max(limits)}
    print(
        "\nReference bots on the same traffic (they send until X answers 429, up to X's 1,440 a day): billed"
        f" users against Courtesy's (at DailyWelcomeLimit {max(limits):,}) the same day.\n"
    )
    rows = []
    for r in bots:
        for i, d in enumerate(r.days):
            rows.append(_bot_row(r, d, i, reference[r.traffic].days[i] if r.traffic in reference else None))
    print(markdown_table(BOT_HEADERS, rows))
    for r in bots:
        print(f"- {r.traffic}, {r.strategy}: {r.waiting:,} waiting at the end, {r.missed:,} never seen")
    print(
        "\n* computed, not requested: the full scan's reads are counted exactly from the follower count"
        " (as in the scenarios above); its DMs are real."
    )
    print(f"\ndeep backlogs took {time.monotonic() - began:.0f} s")
