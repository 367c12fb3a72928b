"""The promise, searched for counterexamples.

A Hypothesis state machine interleaves follows, unfollows, follows again, renames,
closed DMs, runs, immediate reruns (a duplicate delivery or Lambda's retry), crashes
at any adapter call, X faults (among them empty or truncated follower pages, failing
or odd user lookups, an empty conversation that is not, and X refusing the account's
DMs for a while) and DynamoDB throttles. Into the same sequence it interleaves webhook
delivery (courtesy.event_worker, over the same adapters and the same ledger): every follow,
unfollow and (reply mode) inbound message is an X Activity API event that is delivered at
once, held back and delivered late (after other events, runs or digests, in any order),
delivered twice (duplicate deliveries, in one batch or later, by X or by SQS), or dropped
and never delivered (the scheduled runs must catch it). Batches also die at any adapter
call of the worker (a crash mid-batch) or fail on throttles, and SQS delivers the same
batch again, at once or later. After every step it checks, against the sandbox's own DM
log and the ledger:

- nobody has two welcome DMs;
- nobody who followed before the baseline has one (unless they followed again later);
- the ledger never forgets a follower and never moves one backwards.

At the end of each case the faults stop, the events still held back are delivered (late,
newest first; the dropped ones never are), runs continue, and every post-baseline
follower who still follows and accepts DMs must have exactly one welcome (a refusal of
the account may write off at most a streak's worth of followers before it is recognised).

The same machine runs in each welcome mode. In reply mode, followers and strangers
also write to the account ("hi" or "STOP"): only followers who wrote get a welcome,
one each, never after opting out, and each opt-out at most one confirmation. In
digest mode nobody gets a DM and daily digests (which can crash too) list each
post-baseline follower; a second listing is only ever one marked as possibly repeated.

`make test` runs a few hundred cases (a fixed set, so CI is repeatable);
`make soak` runs thousands of random ones (COURTESY_CAMPAIGN=soak).
"""

from __future__ import annotations

import os
import re

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from courtesy.domain import parse_time
from courtesy.errors import CourtesyError
from courtesy.ledger import META_KEY, Ledger
from courtesy.lifecycle import BY_NAME, State
from courtesy.x_account import XAccount
from sandbox import USAGE_CAPPED_BODY, XSandbox
from tests.faults import Crash, CrashAt
from tests.integration import test_event_worker as webhook  # the event builders and one SQS batch
from tests.integration.conftest import CycleWorld, Stack
from tools.local_aws import LOCAL_NAMES, LocalAws

PROFILES = {
    # A fixed set of cases, the same on every CI run.
    "ci": settings(max_examples=int(os.environ.get("COURTESY_CAMPAIGN_CASES", 200)), stateful_step_count=12, derandomize=True),
    # New random cases each time, longer ones.
    "soak": settings(max_examples=int(os.environ.get("COURTESY_CAMPAIGN_CASES", 3000)), stateful_step_count=25),
}
INITIAL_FOLLOWERS = 30
X_CALLS = ["followers_page", "send_dm", "find_sent_dm", "account_id", "dm_events_page", "lookup_users", "followers_count"]
LEDGER_CALLS = [
    "load_meta", "save_meta", "record_baseline", "known", "record_new", "requeue_departed", "queued", "claim", "mark_welcomed",
    "mark_uncertain", "release", "mark_undeliverable", "confirm_uncertain", "release_uncertain", "mark_departed", "count_send",
    "move_queue", "ask_reply", "record_message_sender", "opt_out", "claim_confirmation", "settle_confirmation",
    "note_empty_lookup", "reopen_refused", "note_writer", "adopt_writer", "skip_writer", "settle_interrupted",
]  # fmt: skip
DIGEST_CALLS = ["queued", "start_listing", "mark_listed", "release_listing", "publish"]
# The adapter calls the webhook worker makes (courtesy.event_worker: the event's bookkeeping record,
# intake, departures, then welcoming the queue), and in reply mode those of the inbox rule too.
WORKER_X_CALLS = ["send_dm", "lookup_users"]
WORKER_LEDGER_CALLS = [
    "get", "load_meta", "known", "record_new", "put_record", "mark_departed", "queued", "claim", "mark_welcomed",
    "count_send", "update_record", "mark_uncertain", "release", "requeue_departed", "skip_pending",
]  # fmt: skip
WORKER_INBOX_CALLS = ["ask_reply", "opt_out", "note_writer", "adopt_writer", "claim_confirmation", "settle_confirmation"]
# What X does with one event: delivers it at once; holds it back (delivered late, or at the end);
# delivers it at once and again later (a duplicate); never delivers it.
DELIVERIES = ["now", "late", "twice", "dropped"]
SQS_BATCH = 10  # the most records SQS hands the worker at once
CONFIRMATION = "Got it"  # how the built-in opt-out confirmation starts
RELISTED = "may be in an earlier digest"
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
    ("empty", 0, None),  # X's empty page, 200 {"meta":{"result_count":0}}
    ("followers", 200, {"data": [{"id": "1", "name": "Stray", "username": "stray"}], "meta": {"result_count": 1}}),
    ("users_lookup", 503, None),
    ("users_lookup", 429, None),
    ("users_lookup", 200, {"meta": {}}),  # an answer about none of the ids asked
    ("dm_events", 200, {"meta": {"result_count": 0}}),  # a conversation that looks empty once
]
# Once a follower reaches one of these states, it never changes again (but to opted out).
FINAL = {State.BASELINE, State.WELCOMED, State.SKIPPED, State.OPTED_OUT, State.LISTED}
# A refusal found to be about the account puts its followers back in the queue.
REOPENED = {State.UNDELIVERABLE, State.FAILED}
# Followers a refusal of the account may write off before a streak shows what it is.
WRITTEN_OFF_PER_RESTRICTION = 2

aws: LocalAws | None = None  # one moto server for the whole campaign


class ExactlyOnce(RuleBasedStateMachine):
    mode = "dm"

    def __init__(self) -> None:
        super().__init__()
        assert aws is not None
        aws.reset()
        self.x = XSandbox().start()
        early = self.x.add_followers(INITIAL_FOLLOWERS, prefix="early")
        aws.create_stack_resources(self.x.credentials)
        self.world = CycleWorld(aws, self.x)
        self.stack = Stack(aws, self.x)
        self.baseline_done = False
        self.pre_baseline: set[str] = set()  # followed before the baseline was taken
        self.came_back_later: set[str] = set()  # of those, followed again after it
        self.closed_dms: set[str] = set()
        self.former: list[str] = []  # unfollowed, may follow again
        self.ledger: dict[str, str] = {}  # follower id -> state, as last seen
        self.usernames = {u["username"]: u["id"] for u in early}  # every username a follower has had -> their id
        self.inbox_started = False  # reply mode: messages from now on must be read
        self.wrote: dict[str, float] = {}  # reply mode: who wrote "hi" after that, and when first
        self.unfollowed_after_writing: set[str] = set()
        self.strangers: list[str] = []
        self.restrictions = 0  # times X refused every DM of the account for a while
        self.held: list[dict] = []  # events X holds back, or SQS will deliver again: delivered late
        self.delivered: list[dict] = []  # events delivered at least once: X may deliver them again

    # --- the world changes (and X sends its events) -----------------------------------

    @rule(count=st.integers(1, 4), data=st.data())
    def follow(self, count: int, data: st.DataObject) -> None:
        users = self.x.add_followers(count, prefix="fan")
        for user in users:
            self.usernames[user["username"]] = user["id"]
        self._happened(data, [webhook.follow(self.world, user["id"]) for user in users])

    @rule(data=st.data())
    def unfollow(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="unfollows")
            self.x.remove_follower(who)
            self.former.append(who)
            if who in self.wrote:
                self.unfollowed_after_writing.add(who)
            self._happened(data, [webhook.unfollow(self.world, who)])

    @rule(data=st.data())
    def follow_and_leave(self, data: st.DataObject) -> None:
        """Someone follows and leaves again before any run sees them (follow-unfollow churn)."""
        [user] = self.x.add_followers(1, prefix="churn")
        self.usernames[user["username"]] = user["id"]
        followed = webhook.follow(self.world, user["id"])
        self.x.remove_follower(user["id"])
        self.former.append(user["id"])
        self._happened(data, [followed, webhook.unfollow(self.world, user["id"])])

    @rule(data=st.data())
    def follow_again(self, data: st.DataObject) -> None:
        if self.former:
            who = data.draw(st.sampled_from(self.former), label="follows again")
            self.former.remove(who)
            self.x.add_follower(who)
            if self.baseline_done and who in self.pre_baseline:
                self.came_back_later.add(who)
            self._happened(data, [webhook.follow(self.world, who)])

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="renamed")
            self.x.rename(who, username=f"renamed{who}", name=f"Renamed {who}")
            self.usernames[f"renamed{who}"] = who

    @rule(data=st.data())
    def close_dms(self, data: st.DataObject) -> None:
        current = self.x.follower_ids()
        if current:
            who = data.draw(st.sampled_from(current[:20]), label="closes DMs")
            self.x.set_receives_dm(who, False)
            self.closed_dms.add(who)

    @precondition(lambda self: self.mode == "reply")
    @rule(data=st.data(), stop=st.booleans(), stranger=st.booleans())
    def write(self, data: st.DataObject, stop: bool, stranger: bool) -> None:
        """Someone writes to the account: a follower, or a stranger; "hi", or an opt-out."""
        if stranger:
            if not self.strangers or data.draw(st.booleans(), label="new stranger"):
                self.strangers.append(self.x.add_user(username=f"stranger{len(self.strangers)}")["id"])
            who = data.draw(st.sampled_from(self.strangers), label="stranger")
        else:
            current = self.x.follower_ids()
            if not current:
                return
            who = data.draw(st.sampled_from(current[:20]), label="writes")
        message = self.x.receive_dm(who, "STOP" if stop else "hi, nice to meet you")
        if self.inbox_started and not stop and not stranger:
            self.wrote.setdefault(who, self.x.now())
        self._happened(data, [webhook.dm_received(self.world, message)])

    @precondition(lambda self: self.mode == "digest")
    @rule()
    def digest(self) -> None:
        self._digest()

    @precondition(lambda self: self.mode == "digest")
    @rule(data=st.data(), nth=st.integers(1, 2), after=st.booleans())
    def digest_and_crash(self, data: st.DataObject, nth: int, after: bool) -> None:
        method = data.draw(st.sampled_from(DIGEST_CALLS), label="digest crashes at")
        if method == "publish":
            self._digest(wrap_publish=lambda publish: CrashAt(_Publisher(publish), "publish", nth=nth, after=after).publish)
        else:
            self._digest(wrap_ledger=lambda ledger: CrashAt(ledger, method, nth=nth, after=after))

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
        elif endpoint == "empty":
            self.x.empty_followers_next()
        else:
            self.x.fail_next(endpoint, status, body=body)

    @rule(runs=st.integers(1, 3))
    def account_refused_for_a_while(self, runs: int) -> None:
        """X refuses every DM of the account (the same 403 a closed recipient gets) for some runs."""
        self.restrictions += 1
        self.x.restrict_dm_sending()
        try:
            for _ in range(runs):
                self._run()
        finally:
            self.x.lift_dm_restriction()

    @rule(operation=st.sampled_from(["get_item", "put_item", "update_item", "query", "batch_get_item", "unprocessed"]))
    def dynamodb_fault(self, operation: str) -> None:
        if operation == "unprocessed":
            self.world.dynamodb.unprocessed_batches += 1
        else:
            self.world.dynamodb.throttle[operation] = self.world.dynamodb.throttle.get(operation, 0) + 1

    # --- webhook delivery, and what goes wrong in it -------------------------------------

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def deliver_late(self, data: st.DataObject) -> None:
        """Events held back (by X, or by SQS after a failed batch) arrive now, in any order."""
        self._deliver_or_die(data, self._take_held(data))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data(), in_one_batch=st.booleans())
    def deliver_again(self, data: st.DataObject, in_one_batch: bool) -> None:
        """X delivers events it delivered already (a duplicate, or a replay), alone or twice in one batch."""
        picked = data.draw(st.lists(st.sampled_from(self.delivered), min_size=1, max_size=3), label="delivered again")
        self._deliver(picked + picked[:1] if in_one_batch else picked)

    def _happened(self, data: st.DataObject, events: list[dict]) -> None:
        """X sends an event for each of these: at once (together, one batch), late, twice, or never."""
        now = []
        for event in events:
            how = data.draw(st.sampled_from(DELIVERIES), label=f"{event['event_type']} delivered")
            if how in ("now", "twice"):
                now.append(event)
            if how in ("late", "twice"):
                self.held.append(event)
        if now:
            self._deliver_or_die(data, now)

    def _deliver_or_die(self, data: st.DataObject, batch: list[dict]) -> None:
        """One batch; one in three, the worker dies at one of its adapter calls mid-batch, and SQS
        delivers the same batch again, at once or later (after its visibility timeout)."""
        if not data.draw(st.sampled_from([False, False, True]), label="the worker dies"):
            self._deliver(batch)
            return
        adapter = data.draw(st.sampled_from(["ledger", "ledger", "x"] if self.baseline_done else ["ledger"]), label="at a call to")
        calls = WORKER_X_CALLS if adapter == "x" else WORKER_LEDGER_CALLS + (WORKER_INBOX_CALLS if self.mode == "reply" else [])
        calls = calls if self.baseline_done else WORKER_LEDGER_CALLS[:2]  # before it, events are only looked at
        method = data.draw(st.sampled_from(calls), label="worker dies at")
        nth, after = data.draw(st.integers(1, 2), label="nth"), data.draw(st.booleans(), label="after")
        wrap = {f"wrap_{adapter}": lambda a: CrashAt(a, method, nth=nth, after=after)}
        if not self._deliver(batch, **wrap) and data.draw(st.booleans(), label="redelivered at once"):
            del self.held[-len(batch) :]  # put back by the failed batch: SQS delivers it again now
            self._deliver(batch)

    def _take_held(self, data: st.DataObject) -> list[dict]:
        """Some of the held-back events, in the order drawn (not the order they happened)."""
        count = len(self.held)
        order = data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=min(count, SQS_BATCH), unique=True), label="late")
        batch = [self.held[i] for i in order]
        self.held = [e for i, e in enumerate(self.held) if i not in order]
        return batch

    def _deliver(self, events: list[dict], **kwargs) -> bool:
        """One SQS batch to the worker. If the worker dies or fails, SQS delivers the whole batch
        again later; if it reports some records failed, those. False if the batch failed."""
        try:
            result = webhook.handle(self.world, *events, welcome_mode=self.mode, **kwargs)
        except (Crash, CourtesyError, ClientError):
            self.held.extend(events)
            return False
        finally:
            self.x.advance(1)
        for event in events:
            if event not in self.delivered:
                self.delivered.append(event)
        for failure in result.batch_item_failures:
            self.held.append(events[int(failure["itemIdentifier"].removeprefix("m-"))])
        return True

    def _run(self, **kwargs):
        if not self.baseline_done:
            self.pre_baseline |= set(self.x.follower_ids())
        summary = None
        try:
            summary = self.world.run(welcome_mode=self.mode, **kwargs)
        except (Crash, CourtesyError, ClientError):
            pass  # the run died or failed; the promise must hold all the same
        if not self.baseline_done or not self.inbox_started:
            meta = aws.client("dynamodb").get_item(TableName=LOCAL_NAMES["LedgerTable"], Key={"follower_id": {"S": META_KEY}})
            self.baseline_done = meta.get("Item", {}).get("baseline_done", {}).get("S") == "true"
            self.inbox_started = bool(meta.get("Item", {}).get("dm_cursor", {}).get("S"))
        return summary

    def _digest(self, **kwargs):
        try:
            return self.world.run_digest(**kwargs)
        except (Crash, CourtesyError, ClientError):
            return None
        finally:
            self.x.advance(60)

    # --- what must always hold -------------------------------------------------------

    @invariant()
    def the_promise_holds(self) -> None:
        counts = self._welcomes()
        assert all(n == 1 for n in counts.values()), f"two welcomes: {[k for k, n in counts.items() if n > 1]}"
        wrong = (set(counts) & self.pre_baseline) - self.came_back_later
        assert not wrong, f"welcomed though they followed before the baseline: {wrong}"
        now = self.world.states()
        for follower_id, before in self.ledger.items():
            assert follower_id in now, f"the ledger forgot {follower_id}"
            if before in FINAL:  # anyone may still opt out, whatever happened before
                assert now[follower_id] in (before, State.OPTED_OUT), f"{follower_id} went from {before} to {now[follower_id]}"
            if before in REOPENED:
                allowed = (before, State.OPTED_OUT, State.PENDING, State.SENDING, State.WELCOMED, State.UNCERTAIN, State.DEPARTED)
                assert now[follower_id] in allowed, f"{follower_id} went from {before} to {now[follower_id]}"
        self.ledger = now
        if self.mode == "reply":
            self._reply_promise_holds()
        elif self.mode == "digest":
            assert self.x.dm_log == [], "digest mode sent a DM"
            unmarked: dict[str, int] = {}
            for follower_id, again in self._listings():
                unmarked[follower_id] = unmarked.get(follower_id, 0) + int(not again)
                assert follower_id not in self.pre_baseline or follower_id in self.came_back_later, f"{follower_id} listed, pre-baseline"
            assert all(n <= 1 for n in unmarked.values()), f"listed twice unmarked: {unmarked}"

    def _reply_promise_holds(self) -> None:
        items = self.stack.ledger_items()
        confirmations: dict[str, int] = {}
        for dm in self.x.dm_log:
            who = dm["recipient_id"]
            if dm["text"].startswith(CONFIRMATION):
                confirmations[who] = confirmations.get(who, 0) + 1
                continue
            asked = {e["sender_id"] for e in self.x.inbound_dms if e["created_at"] <= dm["created_at"]}
            assert who in asked, f"{who} got a welcome without writing first"
            item = items.get(who, {})
            if item.get("state") == State.OPTED_OUT:
                opted = parse_time(item["opted_out_at"])
                assert opted is None or parse_time(dm["created_at"]) <= opted, f"{who} welcomed after opting out"
        assert all(n == 1 for n in confirmations.values()), f"two confirmations: {confirmations}"
        assert not set(self._welcomes()) & set(self.strangers), "a non-follower was answered"

    def _welcomes(self) -> dict[str, int]:
        """Welcome DMs per person, from the sandbox's own DM log (opt-out confirmations aside)."""
        counts: dict[str, int] = {}
        for dm in self.x.dm_log:
            if not dm["text"].startswith(CONFIRMATION):
                counts[dm["recipient_id"]] = counts.get(dm["recipient_id"], 0) + 1
        return counts

    def _listings(self) -> list[tuple[str, bool]]:
        """(follower id, marked as possibly repeated) for every entry of every digest published."""
        out = []
        for body in self.world.digests:
            entries = re.split(r"^\d+\. ", body, flags=re.M)[1:]
            for entry in entries:
                username = re.search(r"https://x\.com/(\w+)", entry).group(1)  # type: ignore[union-attr]
                out.append((self.usernames.get(username, username), RELISTED in entry))
        return out

    def teardown(self) -> None:
        try:
            self._everyone_is_welcomed_once_faults_gone()
        finally:
            self.x.stop()

    def _everyone_is_welcomed_once_faults_gone(self) -> None:
        self.world.dynamodb.throttle.clear()
        self.world.dynamodb.unprocessed_batches = 0
        self._deliver_the_rest_late()
        quiet = 0
        for _ in range(20):
            summary = self._run(max_welcomes_per_run="50")
            settled = summary is not None and summary.scan_complete and summary.pending == summary.uncertain == 0
            if self.mode == "reply":  # and the inbox read to its end
                settled = settled and summary is not None and not any(n.startswith("inbox") for n in summary.notes)
            if self.mode == "digest":  # the digest queue empties only when a digest runs
                settled = summary is not None and summary.scan_complete and summary.uncertain == 0
            quiet = quiet + 1 if self.baseline_done and settled else 0
            if quiet >= 2:
                break
        self._deliver_the_rest_late()  # what failed the first time (an X fault still queued), once more
        if self.mode == "digest":
            self._digest()
        self.the_promise_holds()
        eligible = set(self.x.follower_ids()) - self.pre_baseline - self.closed_dms
        states = self.world.states()
        written_off = {f for f in eligible if states.get(f) == State.UNDELIVERABLE and self._welcomes().get(f, 0) == 0}
        assert len(written_off) <= WRITTEN_OFF_PER_RESTRICTION * self.restrictions, f"written off by refusals: {written_off}"
        eligible -= written_off
        if self.mode == "dm":
            counts = self._welcomes()
            missing = {f: states.get(f) for f in eligible if counts.get(f, 0) != 1}
            assert not missing, f"not welcomed exactly once after the faults stopped: {missing}"
        elif self.mode == "reply":
            counts = self._welcomes()
            owed = (set(self.wrote) & eligible) - self.unfollowed_after_writing
            owed = {f for f in owed if states.get(f) != State.OPTED_OUT}
            missing = {f: states.get(f) for f in owed if counts.get(f, 0) != 1}
            assert not missing, f"wrote first, not welcomed exactly once after the faults stopped: {missing}"
        else:
            listed = {follower_id for follower_id, _ in self._listings()}
            missing = {f: states.get(f) for f in eligible if f not in listed}
            assert not missing, f"never in a digest after the faults stopped: {missing}"

    def _deliver_the_rest_late(self) -> None:
        """Every event still held back is delivered now, newest first, in SQS-sized batches."""
        late, self.held = self.held[::-1], []
        for start in range(0, len(late), SQS_BATCH):
            self._deliver(late[start : start + SQS_BATCH])


class _Publisher:
    """The digest's publish function as a method, so CrashAt can wrap it."""

    def __init__(self, publish):
        self.publish = publish


class ReplyOnce(ExactlyOnce):
    mode = "reply"


class DigestOnce(ExactlyOnce):
    mode = "digest"


def test_every_crash_point_names_a_call_the_code_has():
    """A renamed adapter method would quietly turn its crashes into plain runs or batches."""
    ledger_calls = LEDGER_CALLS + WORKER_LEDGER_CALLS + WORKER_INBOX_CALLS + DIGEST_CALLS[:-1]
    missing = [m for m in ledger_calls if not hasattr(Ledger, m) and m not in BY_NAME]
    missing += [m for m in X_CALLS + WORKER_X_CALLS if not hasattr(XAccount, m)]
    assert not missing, f"no such ledger method, lifecycle transition or X call: {missing}"


@pytest.fixture
def campaign_aws(local_aws):
    global aws
    aws = local_aws
    yield
    aws = None


# Reply and digest mode share most of the machine with dm mode, so they get fewer cases in CI.
MODES = {"dm": (ExactlyOnce, 1.0), "reply": (ReplyOnce, 0.5), "digest": (DigestOnce, 0.3)}


@pytest.mark.long
@pytest.mark.parametrize("mode", list(MODES))
def test_every_follower_after_the_baseline_gets_exactly_one_welcome(campaign_aws, mode):
    machine, share = MODES[mode]
    profile = PROFILES[os.environ.get("COURTESY_CAMPAIGN", "ci")]
    examples = max(10, int(profile.max_examples * share))
    run_state_machine_as_test(
        machine,
        settings=settings(profile, max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True),
    )
