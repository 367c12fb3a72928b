"""The promise, searched for counterexamples.

A Hypothesis state machine interleaves follows, unfollows, follows again, renames,
closed DMs, runs, immediate reruns (a duplicate delivery or Lambda's retry), crashes
at any adapter call, X faults and DynamoDB throttles. After every step it checks,
against the sandbox's own DM log and the ledger:

- nobody has two welcome DMs;
- nobody who followed before the baseline has one (unless they followed again later);
- the ledger never forgets a follower and never moves one backwards.

At the end of each case the faults stop, runs continue, and every post-baseline
follower who still follows and accepts DMs must have exactly one welcome.

`make test` runs a few hundred cases (a fixed set, so CI is repeatable);
`make soak` runs thousands of random ones (COURTESY_CAMPAIGN=soak).
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from courtesy.errors import CourtesyError
from courtesy.ledger import META_KEY, State
from sandbox import USAGE_CAPPED_BODY, XSandbox
from tests.faults import Crash, CrashAt
from tests.integration.conftest import CycleWorld, Stack
from tools.local_aws import LOCAL_NAMES, LocalAws

PROFILES = {
    # A fixed set of cases, the same on every CI run.
    "ci": settings(max_examples=int(os.environ.get("COURTESY_CAMPAIGN_CASES", 200)), stateful_step_count=12, derandomize=True),
    # New random cases each time, longer ones.
    "soak": settings(max_examples=int(os.environ.get("COURTESY_CAMPAIGN_CASES", 3000)), stateful_step_count=25),
}
INITIAL_FOLLOWERS = 30
X_CALLS = ["followers_page", "send_dm", "find_sent_dm", "account_id"]
LEDGER_CALLS = [
    "load_meta", "save_meta", "record_baseline", "known", "queue_new", "requeue_departed", "queued", "claim", "mark_welcomed",
    "mark_uncertain", "release", "mark_undeliverable", "confirm_uncertain", "release_uncertain", "mark_departed", "save_daily_count",
]  # fmt: skip
X_FAULTS = [
    ("send_dm", 429, None),
    ("send_dm", 429, USAGE_CAPPED_BODY),
    ("send_dm", 500, None),
    ("send_dm", 503, ""),
    ("followers", 503, None),
    ("followers", 200, "{not json"),
    ("followers", 200, {"data": "not a list", "meta": {}}),
    ("dm_events", 429, None),
    ("dm_events", 502, None),
    ("drop", 0, None),
]
# Once a follower reaches one of these states, it never changes again.
FINAL = {State.BASELINE, State.WELCOMED, State.UNDELIVERABLE, State.FAILED, State.SKIPPED}

aws: LocalAws | None = None  # one moto server for the whole campaign


class ExactlyOnce(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert aws is not None
        aws.reset()
        self.x = XSandbox().start()
        self.x.add_followers(INITIAL_FOLLOWERS, prefix="early")
        aws.create_stack_resources(self.x.credentials)
        self.world = CycleWorld(aws, self.x)
        self.stack = Stack(aws, self.x)
        self.baseline_done = False
        self.pre_baseline: set[str] = set()  # followed before the baseline was taken
        self.came_back_later: set[str] = set()  # of those, followed again after it
        self.closed_dms: set[str] = set()
        self.former: list[str] = []  # unfollowed, may follow again
        self.ledger: dict[str, str] = {}  # follower id -> state, as last seen

    # --- the world changes ---------------------------------------------------------

    @rule(count=st.integers(1, 4))
    def follow(self, count: int) -> None:
        self.x.add_followers(count, prefix="fan")

    @rule(data=st.data())
    def unfollow(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="unfollows")
            self.x.remove_follower(who)
            self.former.append(who)

    @rule(data=st.data())
    def follow_again(self, data: st.DataObject) -> None:
        if self.former:
            who = data.draw(st.sampled_from(self.former), label="follows again")
            self.former.remove(who)
            self.x.add_follower(who)
            if self.baseline_done and who in self.pre_baseline:
                self.came_back_later.add(who)

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="renamed")
            self.x.rename(who, username=f"renamed{who}", name=f"Renamed {who}")

    @rule(data=st.data())
    def close_dms(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="closes DMs")
            self.x.set_receives_dm(who, False)
            self.closed_dms.add(who)

    # --- runs, and what goes wrong in them ----------------------------------------------

    @rule()
    def run(self) -> None:
        self._run()

    @rule()
    def rerun_at_once(self) -> None:
        """A duplicate delivery, or Lambda retrying a run: no time passes."""
        self._run(advance_minutes=0)

    @rule(adapter=st.sampled_from(["x", "ledger"]), data=st.data(), nth=st.integers(1, 3), after=st.booleans())
    def run_and_crash(self, adapter: str, data: st.DataObject, nth: int, after: bool) -> None:
        method = data.draw(st.sampled_from(X_CALLS if adapter == "x" else LEDGER_CALLS), label="crashes at")
        wrap = {f"wrap_{adapter}": lambda a: CrashAt(a, method, nth=nth, after=after)}
        self._run(**wrap)

    @rule(fault=st.sampled_from(X_FAULTS))
    def x_fault(self, fault: tuple) -> None:
        endpoint, status, body = fault
        if endpoint == "drop":
            self.x.drop_after_store_next()
        else:
            self.x.fail_next(endpoint, status, body=body)

    @rule(operation=st.sampled_from(["get_item", "put_item", "update_item", "query", "batch_get_item", "unprocessed"]))
    def dynamodb_fault(self, operation: str) -> None:
        if operation == "unprocessed":
            self.world.dynamodb.unprocessed_batches += 1
        else:
            self.world.dynamodb.throttle[operation] = self.world.dynamodb.throttle.get(operation, 0) + 1

    def _run(self, **kwargs):
        if not self.baseline_done:
            self.pre_baseline |= set(self.x.follower_ids())
        summary = None
        try:
            summary = self.world.run(**kwargs)
        except (Crash, CourtesyError, ClientError):
            pass  # the run died or failed; the promise must hold all the same
        if not self.baseline_done:
            meta = aws.client("dynamodb").get_item(TableName=LOCAL_NAMES["LedgerTable"], Key={"follower_id": {"S": META_KEY}})
            self.baseline_done = meta.get("Item", {}).get("baseline_done", {}).get("S") == "true"
        return summary

    # --- what must always hold -------------------------------------------------------

    @invariant()
    def the_promise_holds(self) -> None:
        counts = self.world.dms_per_follower()
        assert all(n == 1 for n in counts.values()), f"two DMs: {[k for k, n in counts.items() if n > 1]}"
        wrong = (set(counts) & self.pre_baseline) - self.came_back_later
        assert not wrong, f"welcomed though they followed before the baseline: {wrong}"
        now = self.world.states()
        for follower_id, before in self.ledger.items():
            assert follower_id in now, f"the ledger forgot {follower_id}"
            if before in FINAL:
                assert now[follower_id] == before, f"{follower_id} went from {before} to {now[follower_id]}"
        self.ledger = now

    def teardown(self) -> None:
        try:
            self._everyone_is_welcomed_once_faults_gone()
        finally:
            self.x.stop()

    def _everyone_is_welcomed_once_faults_gone(self) -> None:
        self.world.dynamodb.throttle.clear()
        self.world.dynamodb.unprocessed_batches = 0
        quiet = 0
        for _ in range(20):
            summary = self._run(max_welcomes_per_run="50")
            settled = summary is not None and summary.scan_complete and summary.pending == summary.uncertain == 0
            quiet = quiet + 1 if self.baseline_done and settled else 0
            if quiet >= 2:
                break
        eligible = set(self.x.follower_ids()) - self.pre_baseline - self.closed_dms
        counts = self.world.dms_per_follower()
        states = self.world.states()
        missing = {f: states.get(f) for f in eligible if counts.get(f, 0) != 1}
        assert not missing, f"not welcomed exactly once after the faults stopped: {missing}"


@pytest.fixture
def campaign_aws(local_aws):
    global aws
    aws = local_aws
    yield
    aws = None


def test_every_follower_after_the_baseline_gets_exactly_one_welcome(campaign_aws):
    profile = PROFILES[os.environ.get("COURTESY_CAMPAIGN", "ci")]
    run_state_machine_as_test(
        ExactlyOnce,
        settings=settings(profile, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True),
    )
