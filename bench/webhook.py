"""Webhook delivery beside schedule delivery (issue 12's benchmark), on the scenarios' traffic.

One engine runs both deliveries on the sandbox's clock, frozen except while the function runs
(then real time flows, so a DM's created_at includes the handler's own measured time):

- schedule: the real handler every 15 minutes (the template's ScheduleExpression), as bench.simulate.
- webhook: the sandbox's Activity API POSTs each signed event to the real receiver
  (courtesy.webhook_receiver behind tools.local_url's Function URL, over HTTP), which queues it on
  SQS (moto); the real handler takes the queue in batches, as the event source mapping hands them
  over, and still runs at the template's SafetyNetSchedule as the safety net.

The function's reserved concurrency of 1 is kept: a batch or a scheduled run starts only once the
previous invocation ended. One warm process serves every invocation (clients built once); the
cold starts Lambda would add are modelled (COLD_START_SECONDS).

Latency: the welcome's created_at in the sandbox's DM log minus the sandbox's followed_at (reply
mode: minus the created_at of the message that made the welcome due). Bills come from the
sandbox's own billing records, priced from courtesy.x_limits.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.fast_moto import faster_queries
from bench.report import table
from bench.simulate import START
from bench.traffic import DAY, STEADY, VIRAL, Pattern
from courtesy.domain import wake_up_event
from courtesy.x_limits import (
    DM_SEND_PER_15_MIN,
    DM_SEND_PER_24_H,
    PRICE_PER_ACTIVITY_EVENT,
    PRICE_PER_DM_EVENT_READ,
    PRICE_PER_DM_SENT,
    PRICE_PER_FOLLOWER_READ,
    PRICE_PER_USER_LOOKUP,
)
from courtesy_cli.webhook import EVENT_TYPES, ActivityApi
from sandbox import XSandbox
from tools.local_aws import LocalAws, load_template
from tools.local_run import LambdaContext, LocalFunction, event_for_slot
from tools.local_url import LocalFunctionUrl, sqs_enqueue, webhook_receiver


def rate_seconds(expression: str) -> int:
    """An EventBridge rate() expression in seconds (the bench needs a fixed interval, not cron)."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression.strip())
    if not match:
        raise ValueError(f"the benchmark needs a rate() schedule, not {expression!r}")
    return int(match[1]) * {"minute": 60, "hour": 3600, "day": DAY}[match[2]]


_TEMPLATE = load_template()
_MAPPING = _TEMPLATE["Resources"]["WebhookEventSourceMapping"]["Properties"]
SCHEDULE_SECONDS = rate_seconds(_TEMPLATE["Parameters"]["ScheduleExpression"]["Default"])
SAFETY_NET_SECONDS = rate_seconds(_TEMPLATE["Parameters"]["SafetyNetSchedule"]["Default"])
BATCH_SIZE = int(_MAPPING["BatchSize"])
BATCH_WINDOW_SECONDS = float(_MAPPING["MaximumBatchingWindowInSeconds"])

# The delays between an event and the welcome, besides the handler's measured run time:
# X's delivery: "sub-second" (X's docs, x-api/activity/introduction, read 2026-12-01; X_API_FACTS.md).
# Its upper end is taken.
X_DELIVERY_SECONDS = 1.0
# Lambda's SQS poller long-polls, so a message is seen on arrival; the batching window (template:
# MaximumBatchingWindowInSeconds) then holds it until it ends or BatchSize messages wait. AWS gives
# no figure for the poll and the invoke themselves: assumed one second.
SQS_PICKUP_SECONDS = 1.0
# A new container's init (imports, clients) before the handler runs, after the function sat idle.
# AWS documents neither how long a container is kept nor the init time of this function; assumed
# (bench --only cold-start measures the imports at about a second on this machine).
COLD_START_SECONDS = 2.0
COLD_AFTER_IDLE_SECONDS = 10 * 60
# The account follows a few people a day itself: X delivers (and bills) those follow.follow events
# too, since a subscription's filter matches the user on either side. An assumption.
OWN_FOLLOWS_PER_DAY = 5

GOAL_SECONDS = 60  # issue 12: follow-to-welcome p95 under 60 s while arrivals stay under X's DM rate
REPLY_GOAL_SECONDS = 30  # issue 12: reply mode's message-to-answer p95 under 30 s


@dataclass(frozen=True)
class Case:
    account: int
    pattern: Pattern
    mode: str = "dm"  # WELCOME_MODE
    # Reply mode: the share of new followers who write (some minutes after following), and the
    # messages a day from earlier followers (owed nothing; one in ten says STOP).
    writers: float = 0.0
    others_per_day: int = 0

    @property
    def name(self) -> str:
        text = f"{self.account:,} {self.pattern.name}" + (", reply mode" if self.mode == "reply" else "")
        return text + (" (over X's DM rate)" if over_dm_rate(self.pattern) else "")


def over_dm_rate(pattern: Pattern) -> bool:
    """Whether arrivals outrun X's DMs (15 per 15 minutes) at any time: a burst, or too many a day."""
    burst_rate = pattern.burst / pattern.burst_seconds if pattern.burst else 0
    return max(burst_rate, pattern.per_day / DAY) > DM_SEND_PER_15_MIN / 900


# A subset of bench.run's SCENARIOS (both deliveries of each must fit in about three minutes): steady
# traffic, the viral burst (more arrivals than X lets anyone welcome: it shows what happens then),
# and reply mode on steady traffic.
CASES = (
    Case(1_000, STEADY),
    Case(50_000, VIRAL),
    Case(1_000, STEADY, mode="reply", writers=0.4, others_per_day=20),
)
DELIVERIES = ("schedule", "webhook")


class SimClock:
    """Simulated epoch seconds: frozen, moved forward by the simulation, and flowing in real time
    while the function runs (so what it does is stamped with its own run time)."""

    def __init__(self, at: float):
        self.at = at
        self._since: float | None = None

    def __call__(self) -> float:
        return self.at + (time.monotonic() - self._since if self._since is not None else 0.0)

    def to(self, at: float) -> None:
        self.at = max(self.at, at)  # never backwards: X's rate-limit windows follow this clock

    def wait(self, seconds: float) -> None:
        self.at += max(0.0, seconds)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._since = time.monotonic()
        try:
            yield
        finally:
            self.at += time.monotonic() - self._since
            self._since = None


@dataclass
class Result:
    case: Case
    delivery: str
    latencies: list[float]  # seconds, per welcome (reply mode: per answer)
    expected: int  # arrivals (reply mode: people owed an answer)
    answered_once: int
    twice: int  # welcomed more than once (never expected)
    waiting: int  # expected, not answered when the day ended
    counts: dict[str, int]  # billed items, per day
    invocations: Counter = field(default_factory=Counter)
    too_many: int = 0  # 429s X answered
    refused_deliveries: int = 0  # deliveries the receiver did not answer 2xx
    failed_events: int = 0  # batchItemFailures
    cold_starts: int = 0
    own_follows: int = 0  # the account's own follows that day (billed as events in webhook mode)
    crc_checks: int = 0  # X's periodic CRC GETs to the receiver (X: every 24 hours)
    wall: float = 0.0
    activity_usd: float = 0.0  # the sandbox's own sum, to cross-check ours

    @property
    def dollars(self) -> dict[str, float]:
        return {item: self.counts[item] * PRICES[item] for item in PRICES}

    @property
    def bill(self) -> float:
        return sum(self.dollars.values())

    def latency(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


PRICES = {
    "follower reads": PRICE_PER_FOLLOWER_READ,
    "user lookups": PRICE_PER_USER_LOOKUP,
    "DMs sent": PRICE_PER_DM_SENT,
    "DM events read": PRICE_PER_DM_EVENT_READ,
    "activity events": PRICE_PER_ACTIVITY_EVENT,
}


class _World:
    """The sandbox, the function (one warm process), and in webhook mode the receiver and the queue."""

    def __init__(self, x: XSandbox, clock: SimClock, app, aws: LocalAws, queue_url: str | None):
        self.x, self.clock, self.app, self.queue_url = x, clock, app, queue_url
        self.sqs = aws.client("sqs")
        self.free_at = clock.at  # reserved concurrency 1: the next invocation starts after this
        self.queued: list[tuple[float, str]] = []  # (in SQS since, event_uuid), oldest first
        self.wake_ups: list[tuple[float, str]] = []  # the function's own delayed messages: (visible at, body)
        self.invocations: Counter = Counter()
        self.cold_starts = self.failed_events = self.refused = 0

    def _invoke(self, at: float, event: dict, kind: str) -> dict:
        self.clock.to(max(at, self.free_at))
        if self.clock.at - self.free_at > COLD_AFTER_IDLE_SECONDS:
            self.cold_starts += 1
            self.clock.to(self.clock.at + COLD_START_SECONDS)
        self.invocations[kind] += 1
        # EMF metrics go to stdout; the logs go nowhere (bench.strategies.quiet_courtesy_logs).
        with contextlib.redirect_stdout(io.StringIO()), self.clock.running():
            answer = self.app.lambda_handler(event, LambdaContext())
        self.free_at = self.clock.at
        return answer

    def scheduled_run(self, slot: float) -> None:
        self._invoke(slot, event_for_slot(datetime.fromtimestamp(slot, UTC)), "CourtesyFunction: scheduled runs")

    def deliver(self, at: float) -> None:
        """X POSTs what is due; each event the receiver accepted is in SQS from now."""
        self.clock.to(at)
        for attempt in self.x.deliver_events():
            if attempt["status"] == 200:
                self.queued.append((self.clock.at, attempt["event_uuid"]))
            else:
                self.refused += 1

    def wake_up(self, queue_url: str, account_id: str, reset_at: float) -> None:
        """courtesy.app.wake_up on this clock: SQS holds the message until X's window resets."""
        delay = min(self.app.SQS_MAX_DELAY_SECONDS, max(0.0, reset_at - self.clock() + 1))
        heapq.heappush(self.wake_ups, (self.clock() + delay, json.dumps(wake_up_event(account_id, reset_at))))

    def next_wake_up(self) -> float | None:
        return max(self.wake_ups[0][0] + SQS_PICKUP_SECONDS, self.free_at) if self.wake_ups else None

    def woken(self, at: float) -> None:
        """The wake-up as the event source mapping hands it over: a batch of one."""
        _, body = heapq.heappop(self.wake_ups)
        record = {"messageId": "wake-up", "receiptHandle": "wake-up", "body": body, "attributes": {}, "messageAttributes": {},
                  "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events",
                  "awsRegion": "us-east-1"}  # fmt: skip
        self._invoke(at, {"Records": [record]}, "CourtesyFunction: wake-ups")

    def next_batch(self) -> float | None:
        """When the event source mapping invokes the function with the waiting messages."""
        if not self.queued:
            return None
        ready = self.queued[0][0] + BATCH_WINDOW_SECONDS
        if len(self.queued) >= BATCH_SIZE:
            ready = min(ready, self.queued[BATCH_SIZE - 1][0])
        return max(ready + SQS_PICKUP_SECONDS, self.free_at)

    def batch(self, at: float) -> None:
        """One SQS batch through the real handler; deletes what it handled, as Lambda's poller does."""
        self.clock.to(at)
        want = min(BATCH_SIZE, sum(1 for since, _ in self.queued if since <= self.clock.at))
        messages: list[dict] = []
        while len(messages) < want:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=want - len(messages), VisibilityTimeout=1800)
            if not got.get("Messages"):
                break
            messages += got["Messages"]
        if not messages:
            raise RuntimeError("SQS gave nothing for the events the receiver queued")
        taken = {json.loads(m["Body"])["event_uuid"] for m in messages}
        self.queued = [q for q in self.queued if q[1] not in taken]
        records = [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {}, "messageAttributes": {},
             "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events",
             "awsRegion": "us-east-1"}
            for m in messages
        ]  # fmt: skip
        answer = self._invoke(self.clock.at, {"Records": records}, "CourtesyFunction: event batches")
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        self.failed_events += len(failed)
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def _subscribe(x: XSandbox, url: str) -> None:
    """What `courtesy webhook setup` does: register the URL (X's CRC check reaches the receiver), subscribe."""
    api = ActivityApi(x.credentials, x.base_url)
    try:
        hook = api.call("POST", "/2/webhooks", "registering", body={"url": url})["data"]
        if not hook["valid"]:
            raise RuntimeError("the sandbox's CRC check of the local receiver failed")
        for event_type in EVENT_TYPES:
            body = {"event_type": event_type, "filter": {"user_id": x.account_id}, "tag": "courtesy", "webhook_id": hook["id"]}
            api.call("POST", "/2/activity/subscriptions", "subscribing", user=True, body=body)
    finally:
        api.close()


def simulate(case: Case, delivery: str, aws: LocalAws, days: float = 1) -> Result:
    began = time.monotonic()
    reply = case.mode == "reply"
    # The baseline the evening before (reply mode: then its first inbox read, which notes where
    # the inbox stands), as bench.simulate and bench.inbox.
    pre_runs = [START.timestamp() - k * SCHEDULE_SECONDS for k in ((2, 1) if reply else (1,))]
    clock = SimClock(pre_runs[0])
    with XSandbox(clock=clock) as x, contextlib.ExitStack() as stack:
        x.seed_followers(case.account)
        aws.reset()
        aws.create_stack_resources(x.credentials)
        function = LocalFunction(
            aws,
            x.base_url,
            clock=lambda: datetime.fromtimestamp(x.now(), UTC),
            sleep=clock.wait,  # the function waiting for X's DM window: simulated time
            DRY_RUN="false",
            WELCOME_MODE=case.mode,
            # X's whole DM budget, as bench.strategies.Courtesy.
            MAX_WELCOMES_PER_RUN=str(DM_SEND_PER_15_MIN),
            DAILY_WELCOME_LIMIT=str(DM_SEND_PER_24_H),
        )
        app = stack.enter_context(function.environment())
        url = queue_url = None
        if delivery == "webhook":
            sqs = aws.client("sqs")
            queue_url = sqs.create_queue(QueueName="courtesy-webhook-events")["QueueUrl"]
            receiver = webhook_receiver(lambda: x.credentials["consumer_secret"], sqs_enqueue(sqs, queue_url))
            url = stack.enter_context(LocalFunctionUrl(receiver))
        world = _World(x, clock, app, aws, queue_url)
        app.wake_up = world.wake_up  # the function's wake-ups on this clock, for this simulation only
        stack.callback(setattr, app, "wake_up", app.send_wake_up)
        for slot in pre_runs:
            world.scheduled_run(slot)
        if url is not None:
            _subscribe(x, url.url)
            url.requests.clear()  # the registration's CRC check is not part of the day
        x.reset_counters()
        world.invocations.clear()
        world.cold_starts = 0

        start, end = START.timestamp(), START.timestamp() + days * DAY
        timeline = _timeline(case, days, delivery, start, end)
        deliveries: list[float] = []
        arrived: list[str] = []
        wrote: dict[str, float] = {}  # reply mode: owed writer -> when their (first) message came
        stopped: set[str] = set()
        rng = random.Random(f"reply:{case.pattern.name}")
        i = 0
        while True:
            t_item = timeline[i][0] if i < len(timeline) else end
            t_delivery = deliveries[0] if deliveries else end
            t_batch = world.next_batch() or end
            t_wake = world.next_wake_up() or end
            now = min(t_item, t_delivery, t_batch, t_wake)
            if now >= end:
                break
            if now == t_item:
                _, kind, what = timeline[i]
                i += 1
                clock.to(now)
                if kind == "slot":
                    world.scheduled_run(now)
                    continue
                if kind == "follow":
                    arrived.append(x.add_follower(username=None)["id"])
                elif kind == "own":
                    x.follow_user(x.add_user(username=None)["id"])
                elif kind == "writes" and what < len(arrived):  # a new follower writes
                    who = arrived[what]
                    wrote.setdefault(who, clock.at)
                    x.receive_dm(who, "hello!")
                elif kind == "other":  # an earlier follower writes: owed nothing
                    who = rng.choice(x.follower_ids()[-600:-100])
                    stop = rng.random() < 0.1
                    stopped.update([who] if stop else [])
                    x.receive_dm(who, "STOP" if stop else "hi there")
                if delivery == "webhook":
                    heapq.heappush(deliveries, clock.at + X_DELIVERY_SECONDS)
            elif now == t_delivery:
                while deliveries and deliveries[0] <= now:
                    heapq.heappop(deliveries)
                world.deliver(now)
            elif now == t_batch:
                world.batch(now)
            else:
                world.woken(now)

        log = x.dm_log
        if reply:
            answers = [dm for dm in log if not dm["text"].startswith("Got it")]
            expected = {who: at for who, at in wrote.items() if who not in stopped}
        else:
            answers = log
            expected = {who: x.followed_at(who) for who in arrived}
        per_person = Counter(dm["recipient_id"] for dm in answers)
        latencies = [
            datetime.fromisoformat(dm["created_at"]).timestamp() - expected[dm["recipient_id"]]
            for dm in answers
            if dm["recipient_id"] in expected
        ]
        counts = {
            "follower reads": sum(x.billed_users_per_day().values()),
            "user lookups": sum(x.billed_lookup_users_per_day().values()),
            "DMs sent": len(log),
            "DM events read": sum(x.billed_dm_events_per_day().values()),
            "activity events": sum(x.billed_activity_events_per_day().values()),
        }
        invocations = Counter(world.invocations)
        if url is not None:
            invocations["WebhookReceiverFunction"] = len(url.requests)
        return Result(
            case=case,
            delivery=delivery,
            latencies=latencies,
            expected=len(expected),
            answered_once=sum(1 for who in expected if per_person[who] == 1),
            twice=sum(1 for n in per_person.values() if n > 1),
            waiting=sum(1 for who in expected if not per_person[who]),
            counts={k: round(v / days) for k, v in counts.items()},
            invocations=Counter({k: round(v / days) for k, v in invocations.items()}),
            too_many=sum(1 for r in x.requests if r["status"] == 429),
            refused_deliveries=world.refused,
            failed_events=world.failed_events,
            cold_starts=world.cold_starts,
            own_follows=sum(1 for item in timeline if item[1] == "own"),
            crc_checks=sum(1 for event, _ in url.requests if event["requestContext"]["http"]["method"] == "GET") if url else 0,
            wall=time.monotonic() - began,
            activity_usd=x.activity_cost_usd() / days,
        )


def _timeline(case: Case, days: float, delivery: str, start: float, end: float) -> list[tuple[float, str, int]]:
    """(when, what, which) of the day, in order: follows (the scenarios' own arrivals, from the slot
    before the day as bench.simulate), the account's own follows, reply mode's messages, scheduled runs."""
    rng = random.Random(f"webhook:{case.pattern.name}:{case.mode}")
    arrivals = [start - SCHEDULE_SECONDS + t for t in case.pattern.arrivals(days)]
    items = [(t, "follow", n) for n, t in enumerate(arrivals)]
    items += [(rng.uniform(start, end), "own", 0) for _ in range(round(OWN_FOLLOWS_PER_DAY * days))]
    # Reply mode: a new follower who writes does so a minute to an hour after following.
    items += [(t + rng.uniform(60, 3600), "writes", n) for n, t in enumerate(arrivals) if rng.random() < case.writers]
    items += [(rng.uniform(start, end), "other", 0) for _ in range(round(case.others_per_day * days))]
    interval = SAFETY_NET_SECONDS if delivery == "webhook" else SCHEDULE_SECONDS
    items += [(start + k * interval, "slot", 0) for k in range(round(days * DAY / interval))]
    return sorted(i for i in items if i[0] < end)


# --- the report --------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.2f}×" if b else "—"


LATENCY_HEADERS = ["scenario", "delivery", "expected", "answered once", "twice", "waiting", "p50 s", "p95 s", "max s", "goal", "429s"]


def latency_row(r: Result) -> list[str]:
    p95 = r.latency(0.95)
    goal = REPLY_GOAL_SECONDS if r.case.mode == "reply" else GOAL_SECONDS
    met = "—" if r.delivery == "schedule" or p95 is None else ("n/a: over X's DM rate" if over_dm_rate(r.case.pattern) else "")
    if met == "":
        met = f"p95 < {goal} s: {'yes' if p95 < goal else 'NO'}"
    return [
        r.case.name,
        r.delivery,
        f"{r.expected:,}",
        f"{r.answered_once:,}",
        str(r.twice),
        f"{r.waiting:,}",
        _s(r.latency(0.5)),
        _s(p95),
        _s(max(r.latencies, default=None)),
        met,
        str(r.too_many),
    ]


def bill_rows(schedule: Result, webhook: Result) -> list[list[str]]:
    rows = []
    for item in PRICES:
        s, w = schedule.counts[item], webhook.counts[item]
        rows.append([item, f"{s:,}", f"{schedule.dollars[item]:,.2f}", f"{w:,}", f"{webhook.dollars[item]:,.2f}", f"{w - s:+,}"])
    rows.append(["X's bill $/day", "", f"{schedule.bill:,.2f}", "", f"{webhook.bill:,.2f}", _ratio(webhook.bill, schedule.bill)])
    return rows


def invocation_rows(schedule: Result, webhook: Result) -> list[list[str]]:
    kinds = sorted(set(schedule.invocations) | set(webhook.invocations))
    rows = [[k, f"{schedule.invocations[k]:,}", f"{webhook.invocations[k]:,}"] for k in kinds]
    total_s, total_w = sum(schedule.invocations.values()), sum(webhook.invocations.values())
    rows.append(["all functions", f"{total_s:,}", f"{total_w:,} ({_ratio(total_w, total_s)})"])
    return rows


def run_webhook(cases: tuple[Case, ...] = CASES) -> list[tuple[Result, Result]]:
    print("\nWebhook delivery beside schedule delivery: one simulated day per scenario, the scenarios' traffic (reply mode:")
    print("40% of new followers write a minute to an hour after following; 20 messages a day from earlier followers, 1 in 10 STOP).")
    print(
        f"schedule: a run every {SCHEDULE_SECONDS // 60} minutes (ScheduleExpression). webhook: X's Activity API POSTs each"
        " signed event over HTTP to the real receiver (a local Function URL), which queues it in SQS (moto); the real"
        f" handler takes batches of up to {BATCH_SIZE}, and runs every {SAFETY_NET_SECONDS // 60} minutes as the safety net"
        " (the template's SafetyNetSchedule default). Reserved concurrency 1: nothing overlaps."
    )
    print(
        "Assumed delays (bench/webhook.py), besides the handler's own run time measured here and added to the clock:"
        f' X\'s delivery {X_DELIVERY_SECONDS:g} s (X: "sub-second", x-api/activity/introduction); SQS to Lambda: the'
        f" batching window {BATCH_WINDOW_SECONDS:g} s (template; shorter once {BATCH_SIZE} wait) + {SQS_PICKUP_SECONDS:g} s"
        f" poll and invoke (assumed; AWS publishes none); a cold start {COLD_START_SECONDS:g} s after {COLD_AFTER_IDLE_SECONDS // 60}"
        f" idle minutes (assumed). The account itself follows {OWN_FOLLOWS_PER_DAY} people a day (assumed): X bills those"
        " follow.follow events too."
    )
    pairs = []
    with LocalAws() as aws, faster_queries():
        for case in cases:
            pair = tuple(simulate(case, d, aws) for d in DELIVERIES)
            pairs.append(pair)
            print(f"  {case.name}: " + ", ".join(f"{r.delivery} {r.wall:.0f} s" for r in pair), flush=True)

    print("\nFollow to welcome (reply mode: message to answer) in simulated seconds; expected = arrivals (reply: new")
    print("followers who wrote, not STOP); waiting = not answered when the day ended; twice must be 0:")
    print(table(LATENCY_HEADERS, [latency_row(r) for pair in pairs for r in pair]))
    print(
        "Unlike --only scenarios (the clock frozen through each run, every run at its slot exactly), the clock here runs"
        " with the handler and cold starts delay runs, so an invocation can start seconds before X's DM window (it starts"
        " at the first send) resets: Courtesy then waits for the reset (courtesy/welcoming.py) rather than meet a 429 (the"
        " 429s column). In webhook mode an invocation that leaves followers waiting for X's DM window queues itself a"
        " wake-up on the event queue, delayed to the window's reset (SQS delays up to 15 minutes), so a backlog over X's DM"
        " rate is worked through at X's rate, as the 15-minute schedule does. Measured run times make these figures vary a"
        " little between runs."
    )
    for schedule, webhook in pairs:
        print(f"\n{schedule.case.name}: X's bill per day by item (billed units, $), schedule beside webhook")
        print(table(["item", "schedule", "$", "webhook", "$", "webhook − schedule"], bill_rows(schedule, webhook)))
        print(table(["Lambda invocations/day", "schedule", "webhook"], invocation_rows(schedule, webhook)))
        p50s, p50w = schedule.latency(0.5), webhook.latency(0.5)
        faster = f"p50 {p50s / p50w:,.{0 if p50s >= 10 * p50w else 1}f}× shorter" if p50s and p50w else "p50 —"
        per_answer = [f"{r.bill / r.answered_once:,.3f}" if r.answered_once else "—" for r in (schedule, webhook)]
        print(
            f"webhook ÷ schedule: X's bill {_ratio(webhook.bill, schedule.bill)} ({webhook.bill - schedule.bill:+,.2f} $/day),"
            f" invocations {_ratio(sum(webhook.invocations.values()), sum(schedule.invocations.values()))}, {faster};"
            f" $ per person answered {per_answer[0]} (schedule), {per_answer[1]} (webhook)."
            f" Events include the account's own {webhook.own_follows} follows; the sandbox's activity_cost_usd()"
            f" ${webhook.activity_usd:,.2f}. X's CRC checks among the receiver's invocations: {webhook.crc_checks}. Webhook:"
            f" {webhook.cold_starts} cold starts, {webhook.refused_deliveries}"
            f" deliveries refused, {webhook.failed_events} events failed."
        )
    prices = ", ".join(f"{item} ${price}" for item, price in PRICES.items())
    print(f"\nPrices (courtesy/x_limits.py): {prices}; users and DM events billed once per UTC day, events once per 24 hours.")
    return pairs
