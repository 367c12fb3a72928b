"""Reply mode's cost driver: DM events read from the account's inbox.

A simulated day of the real handler in reply mode (a run every 15 minutes) while people
write to the account: new followers (who are owed a welcome), earlier followers and
strangers (who are left alone), some of them opting out. Measured from the sandbox's own
records: events returned, events billed (distinct per UTC day), DM lookup requests per
run against X's 15 per 15 minutes, and whether every new follower who wrote got exactly
one answer. The reference is a bot that reads the newest page (100 events) every run,
computed from the same inbox: what it reads, bills, and never sees.
"""

from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.simulate import INTERVAL, START
from courtesy.x_limits import DM_EVENTS_PAGE_MAX, DM_LOOKUP_PER_15_MIN, PRICE_PER_DM_EVENT_READ
from sandbox import XSandbox
from tools.local_aws import LocalAws
from tools.local_run import LocalFunction, event_for_slot

RUNS_PER_DAY = 86_400 // INTERVAL


@dataclass(frozen=True)
class Inbox:
    name: str
    per_day: int  # messages spread over the day
    burst: int = 0  # messages within one hour (a post that went viral)

    def times(self, seed: int = 7) -> list[float]:
        rng = random.Random(f"{self.name}:{seed}")
        times = [rng.uniform(0, 86_400) for _ in range(self.per_day)]
        times += [10 * 3600 + rng.uniform(0, 3600) for _ in range(self.burst)]
        return sorted(times)


INBOXES = (Inbox("quiet", 20), Inbox("busy", 600), Inbox("burst", 100, burst=3_000))
HEADERS = [
    "inbox", "messages", "inbox events", "events read", "billed", "billed/inbox", "X $/day", "max lookups/run",
    "429s", "owed", "answered once", "waiting", "ref: read", "ref: billed", "ref: never seen",
]  # fmt: skip


def simulate_inbox(inbox: Inbox, aws: LocalAws, followers: int = 5_000) -> list[str]:
    baseline_slot = START - timedelta(seconds=2 * INTERVAL)
    with XSandbox(clock=baseline_slot.timestamp) as x:
        x.seed_followers(followers)
        aws.reset()
        aws.create_stack_resources(x.credentials)
        function = LocalFunction(aws, x.base_url, clock=lambda: datetime.fromtimestamp(x.now(), UTC), DRY_RUN="false", WELCOME_MODE="reply")

        def run(slot: datetime) -> None:
            x.advance(slot.timestamp() - x.now())
            with contextlib.redirect_stdout(io.StringIO()):
                function.invoke(event_for_slot(slot))

        run(baseline_slot)  # the baseline
        run(baseline_slot + timedelta(seconds=INTERVAL))  # reply mode notes where the inbox stands
        x.reset_counters()
        rng = random.Random(inbox.name)
        old = x.follower_ids()[100:600]
        strangers = [x.add_user(username=f"stranger{i}")["id"] for i in range(50)]
        newcomers: list[str] = []
        owed: set[str] = set()
        quit_: set[str] = set()
        messages = [START + timedelta(seconds=t) for t in inbox.times()]
        lookups_per_run = []
        sent = 0
        for k in range(RUNS_PER_DAY):
            slot = START + timedelta(seconds=k * INTERVAL)
            while sent < len(messages) and messages[sent] <= slot:
                x.advance(messages[sent].timestamp() - x.now())
                kind = rng.random()
                if kind < 0.4 or not newcomers:  # a new follower, who then writes
                    newcomers.append(x.add_follower(username=None)["id"])
                    who = newcomers[-1]
                else:
                    who = rng.choice(newcomers if kind < 0.7 else old if kind < 0.9 else strangers)
                stop = rng.random() < 0.05
                x.receive_dm(who, "STOP" if stop else "hello!")
                if stop:
                    quit_.add(who)
                elif who in newcomers and who not in quit_:
                    owed.add(who)
                sent += 1
            before = sum(1 for r in x.requests if "dm_events" in r["path"])
            run(slot)
            lookups_per_run.append(sum(1 for r in x.requests if "dm_events" in r["path"]) - before)
        run(START + timedelta(days=1))  # one more run at the end of the day

        welcomes: dict[str, int] = {}
        for dm in x.dm_log:
            if not dm["text"].startswith("Got it"):
                welcomes[dm["recipient_id"]] = welcomes.get(dm["recipient_id"], 0) + 1
        # Welcomed once each, or opted out before their answer went: never twice.
        answered = sum(1 for who in owed if welcomes.get(who) == 1)
        # Owed and not answered yet at the day's end: X's DM limits (15 per 15 minutes) and the
        # daily welcome limit hold them back; they are answered in the next runs.
        waiting = sum(1 for who in owed if who not in welcomes and who not in quit_)
        assert all(n == 1 for n in welcomes.values()), "someone was welcomed twice"
        billed = sum(x.billed_dm_events_per_day().values())
        events = x.inbound_dms + x.dm_log
        ref_read, ref_billed, ref_unseen = _newest_page_reference(events)
        return [
            inbox.name,
            f"{len(messages):,}",
            f"{len(events):,}",
            f"{x.dm_events_returned:,}",
            f"{billed:,}",
            f"{billed / len(events):.2f}",
            f"{billed * PRICE_PER_DM_EVENT_READ:.2f}",
            f"{max(lookups_per_run)} of {DM_LOOKUP_PER_15_MIN}",
            str(sum(1 for r in x.requests if r["status"] == 429)),
            f"{len(owed):,}",
            f"{answered:,}",
            str(waiting),
            f"{ref_read:,}",
            f"{ref_billed:,}",
            f"{ref_unseen:,}",
        ]


def _newest_page_reference(events: list[dict]) -> tuple[int, int, int]:
    """A bot reading the newest page (100 events) each run over the same inbox: events read,
    distinct events (billed, all in one UTC day here), events never in any page it read."""
    ordered = sorted(events, key=lambda e: int(e["dm_event_id"]))
    read, seen = 0, set()
    for k in range(1, RUNS_PER_DAY + 1):
        slot = (START + timedelta(seconds=k * INTERVAL)).strftime("%Y-%m-%dT%H:%M:%S")
        page = [e for e in ordered if e["created_at"] < slot][-DM_EVENTS_PAGE_MAX:]
        read += len(page)
        seen.update(e["dm_event_id"] for e in page)
    return read, len(seen), len(ordered) - len(seen)
