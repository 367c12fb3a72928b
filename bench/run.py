"""`python -m bench` (`make bench`): the scenarios, the deep backlogs, reply mode's inbox, webhook
delivery beside schedule delivery, then cold start, printed as tables. `python -m bench --only
backlog` (or scenarios, inbox, webhook, cold-start; repeatable) runs only those parts."""

from __future__ import annotations

import argparse
import time

from bench import backlog, cold_start, inbox, webhook
from bench.report import DETAIL_HEADERS, HEADLINE_HEADERS, detail_row, headline_row, table
from bench.simulate import INTERVAL, simulate
from bench.strategies import FULL_SCAN_REAL_MAX, STRATEGIES, quiet_courtesy_logs
from bench.traffic import QUIET, STEADY, VIRAL
from courtesy.x_limits import (
    DM_SEND_PER_15_MIN,
    PRICE_PER_DM_EVENT_READ,
    PRICE_PER_DM_SENT,
    PRICE_PER_FOLLOWER_READ,
    PRICE_PER_OWNED_FOLLOWER_READ,
)
from tools.local_aws import LocalAws

DAYS = 1
# (account size, pattern). The viral burst runs on one account only: its backlog makes every
# run of the day slow on this machine, and the full cross-product would not fit in ~10 minutes.
SCENARIOS = [
    (1_000, STEADY),
    (1_000, QUIET),
    (50_000, STEADY),
    (50_000, QUIET),
    (50_000, VIRAL),
    (1_000_000, STEADY),
    (1_000_000, QUIET),
]


PARTS = ("scenarios", "backlog", "inbox", "webhook", "cold-start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable); default: all")
    parser.add_argument(
        "--limits",
        default=",".join(map(str, backlog.LIMITS)),
        help="backlog: Courtesy's DailyWelcomeLimit values, comma-separated (default %(default)s; 1000,1440 adds"
        " X's whole allowance, about 9 minutes more)",
    )
    args = parser.parse_args(argv)
    limits = tuple(int(v) for v in args.limits.split(","))
    parts = set(args.only or PARTS)
    began = time.monotonic()
    quiet_courtesy_logs()
    if "scenarios" in parts:
        run_scenarios()
    if "backlog" in parts:
        backlog.run_backlog(limits)
    if "inbox" in parts:
        run_inbox()
    if "webhook" in parts:
        webhook.run_webhook()
    if "cold-start" in parts:
        run_cold_start()
    print(f"\nbenchmark took {time.monotonic() - began:.0f} s")


def run_scenarios() -> None:
    print(f"Courtesy benchmark: {DAYS} simulated day per scenario, a run every {INTERVAL // 60} minutes, after a baseline run")
    print("the evening before. Traffic: " + "; ".join(f"{p.name} = {p.describe()}" for p in (STEADY, QUIET, VIRAL)) + ".")
    print(f"Every strategy may send {DM_SEND_PER_15_MIN} DMs per 15 minutes (Courtesy: MaxWelcomesPerRun={DM_SEND_PER_15_MIN}).\n")
    groups = []
    with LocalAws() as aws:
        for account, pattern in SCENARIOS:
            started = time.monotonic()
            group = {s.name: simulate(s, account, pattern, DAYS, aws) for s in STRATEGIES}
            groups.append(group)
            print(f"  {account:,} followers, {pattern.name}: {time.monotonic() - started:.0f} s", flush=True)

    print("\nHeadline: billed users per day (distinct per UTC day) and the estimated daily X bill")
    print(table(HEADLINE_HEADERS, [headline_row(g) for g in groups]))
    print("\nDetails (latency in simulated minutes from follow to welcome; waiting = not welcomed at the end;")
    print("missed = never seen; DDB = the ledger's DynamoDB requests, from the run summary):")
    print(table(DETAIL_HEADERS, [detail_row(o) for g in groups for o in g.values()]))
    print(
        f"\n* computed, not requested: above {FULL_SCAN_REAL_MAX:,} followers the full scan's reads are counted exactly"
        " from the follower count (ceil(n/1,000) requests and n users a run; distinct per day: the list at the day's"
        " first run plus each newcomer); its DMs are real."
        f"\nPrices (courtesy/x_limits.py): ${PRICE_PER_FOLLOWER_READ} per follower read (${PRICE_PER_OWNED_FOLLOWER_READ}"
        f" through the account's own app), ${PRICE_PER_DM_SENT} per DM. Billed users: the sandbox records the ids each"
        " followers request and each users lookup (Courtesy's check that a queued follower still follows, also"
        " $0.010) returns, per UTC day of its clock; X bills a user read again the same day once."
        "\nCPU: time.thread_time() around the handler in the calling thread (the sandbox and moto serve from other"
        " threads); every run rebuilds the function's clients, as a cold container would."
    )


def run_inbox() -> None:
    print("\nReply mode: one simulated day of the inbox on a 5,000-follower account (a run every 15 minutes). Of the")
    print("messages, 40% come from new followers (owed one welcome), the rest from them again, earlier followers and")
    print("strangers (left alone); 5% are STOP. Inbox events = messages received + sent. Reference (ref:) = a bot")
    print("reading the newest 100 events every run, computed from the same inbox. Waiting = owed, not answered by")
    print("the day's end (X's 15 DMs per 15 minutes and DailyWelcomeLimit hold them back; the next runs answer them).")
    with LocalAws() as aws:
        rows = [inbox.simulate_inbox(box, aws) for box in inbox.INBOXES]
    print(table(inbox.HEADERS, rows))
    print(f"Prices: ${PRICE_PER_DM_EVENT_READ} per DM event read, billed once per UTC day (courtesy/x_limits.py).")


def run_cold_start() -> None:
    print("\nCold start: import time in a fresh interpreter, median of 7 alternating runs, the function's environment.")
    print("Floor A: the dependencies' imports (tweepy, boto3, Powertools Logger, Metrics, Tracer, parameters, idempotency);")
    print("floor B: A plus the X-Ray SDK that Tracer() imports in every environment. Target: courtesy.app ≤ 1.15 × floor.")
    rows = []
    for tracing in (True, False):
        m = cold_start.measure(tracing=tracing)
        rows.append(
            [
                "Tracer on (Tracing: Active)" if tracing else "Tracer off",
                f"{m['imports'] * 1000:.0f}",
                f"{m['with_tracer'] * 1000:.0f}",
                f"{m['handler'] * 1000:.0f}",
                f"{m['ratio_imports']:.2f}",
                f"{m['ratio_with_tracer']:.2f}",
            ]
        )
    print(table(["environment", "floor A ms", "floor B ms", "courtesy.app ms", "ratio to A", "ratio to B"], rows))
    sizes = cold_start.built_sizes()
    if sizes:
        print("Built sizes (.aws-sam/build, apparent bytes): " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items()))
    else:
        print("Built sizes: no .aws-sam/build here; `make build` produces it.")
