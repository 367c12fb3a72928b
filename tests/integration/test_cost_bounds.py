"""Cost bounds of the scheduled run on small simulated traffic (issue 4): the real handler,
tweepy over HTTP to the X sandbox on a frozen clock, moto. Checked against the sandbox's
records and the DynamoDB calls actually made, never against what Courtesy counted itself.

The bounds are structural (pages, requests, calls), so they cannot flake; `make bench`
measures the same things at scale."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.client import BaseClient

from courtesy.welcome_cycle import BASELINE_PAGE_SIZE
from courtesy.x_limits import DM_SEND_PER_15_MIN, FOLLOWERS_PAGE_MAX
from sandbox import XSandbox
from tools.local_aws import LOCAL_NAMES
from tools.local_run import LocalFunction, event_for_slot

INTERVAL = timedelta(minutes=15)
START = datetime(2030, 1, 1, tzinfo=UTC)
# Ledger writes: one meta item per run; per welcome, record it, claim it, mark it welcomed, count it.
WRITES_PER_RUN, WRITES_PER_WELCOME = 1, 4
# Boundary re-reads billed once per UTC day: at most a page or two of known followers.
BILLED_MARGIN = 20


class DynamoCalls:
    """DynamoDB operations on the ledger table, as the client sent them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.ops: Counter[str] = Counter()
        original = BaseClient._make_api_call

        def counting(client, operation, params):
            if client.meta.service_model.service_name == "dynamodb":
                tables = params.get("RequestItems", {}).keys() | {params.get("TableName")}
                if LOCAL_NAMES["LedgerTable"] in tables:
                    self.ops[operation] += 1
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", counting)

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.ops.items() if op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"))


class Account:
    """An account of `followers` on a sandbox whose clock only moves when a run is due."""

    def __init__(self, aws, x: XSandbox, **env: str):
        self.x = x
        aws.reset()
        aws.create_stack_resources(x.credentials)
        clock = lambda: datetime.fromtimestamp(x.now(), UTC)  # noqa: E731
        self.function = LocalFunction(aws, x.base_url, clock=clock, DRY_RUN="false", **env)
        self.slot = START - 2 * INTERVAL  # the first run (the baseline) is the evening before

    def at(self, moment: datetime) -> None:
        self.x.advance(moment.timestamp() - self.x.now())

    def run(self) -> dict:
        """The next scheduled run; returns its summary plus the followers requests it made."""
        self.slot += INTERVAL
        self.at(self.slot)
        before = len(self.x.requests)
        summary = self.function.invoke(event_for_slot(self.slot))
        made = self.x.requests[before:]
        summary["followers_requests"] = sum(1 for r in made if r["path"].endswith("/followers"))
        summary["too_many_requests"] = sum(1 for r in made if r["status"] == 429)
        return summary


@pytest.fixture
def account(local_aws, request):
    size = getattr(request, "param", 1_000)
    with XSandbox(clock=(START - INTERVAL).timestamp) as x:
        x.seed_followers(size)
        yield Account(local_aws, x, MAX_WELCOMES_PER_RUN=str(DM_SEND_PER_15_MIN))


@pytest.mark.parametrize("account", [1_000, 50_000], indirect=True)
def test_the_first_run_reads_one_small_page_whatever_the_account_size(account):
    summary = account.run()
    assert summary["baseline"] is True
    assert summary["followers_requests"] == 1
    assert account.x.users_returned == summary["followers_read"] <= BASELINE_PAGE_SIZE < FOLLOWERS_PAGE_MAX


def test_a_run_with_nothing_new_makes_exactly_one_followers_request(account):
    account.run()
    account.x.add_followers(3, prefix="new")
    account.run()
    for _ in range(3):
        summary = account.run()
        assert summary["new_followers"] == 0 and summary["followers_requests"] == 1


def test_a_simulated_day_bills_about_the_new_followers_and_welcomes_each_within_one_interval(account, monkeypatch):
    account.run()  # the baseline, the evening before
    calls = DynamoCalls(monkeypatch)
    # Six hours of 15-minute runs (a whole day would take too long here): 15 followers
    # arrive, one every 23 minutes, so some runs find one and some none.
    runs = 24
    arrivals = [START + timedelta(minutes=7 + 23 * i) for i in range(15)]
    summaries = []
    for _ in range(runs):
        for moment in [a for a in arrivals if account.slot < a <= account.slot + INTERVAL]:
            account.at(moment)
            account.x.add_follower()
        summaries.append(account.run())

    new = sum(s["new_followers"] for s in summaries)
    welcomed = sum(s["welcomed"] for s in summaries)
    assert new == welcomed == len(arrivals)
    # X bills a user read again the same UTC day once.
    billed = account.x.billed_users_per_day()["2030-01-01"]
    assert billed <= 1.5 * new + BILLED_MARGIN
    for s in summaries:
        if s["new_followers"] == 0:
            assert s["followers_requests"] == 1
    # At most one BatchGetItem per 100 users read, rounded up per page read.
    users_read = sum(s["followers_read"] for s in summaries)
    pages = sum(s["followers_requests"] for s in summaries)
    assert calls.ops["BatchGetItem"] <= pages + users_read // 100
    assert calls.writes <= WRITES_PER_RUN * runs + WRITES_PER_WELCOME * welcomed
    # Arrivals well under the DM rate limit: welcomed at the first run after the follow.
    for dm in account.x.dm_log:
        waited = datetime.fromisoformat(dm["created_at"]).timestamp() - account.x.followed_at(dm["recipient_id"])
        assert 0 <= waited <= INTERVAL.total_seconds()


def test_a_backlog_uses_each_dm_window_fully_and_never_meets_a_429(account):
    account.run()
    account.x.add_followers(2 * DM_SEND_PER_15_MIN + 10, prefix="burst")
    sent = [account.run() for _ in range(4)]
    assert [s["welcomed"] for s in sent] == [DM_SEND_PER_15_MIN, DM_SEND_PER_15_MIN, 10, 0]
    assert all(s["too_many_requests"] == 0 for s in sent)
    assert not any(r["status"] == 429 for r in account.x.requests)
    assert len(account.x.dm_log) == 2 * DM_SEND_PER_15_MIN + 10
