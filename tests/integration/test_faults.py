"""Every fault part 2 names, one regression test each, checked against the sandbox's DM log.

The promise: every follower after the baseline gets exactly one welcome, eventually;
nobody gets two; nobody from before the baseline gets any."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from sandbox import USAGE_CAPPED_BODY
from tests.faults import At, Crash, CrashAt
from tools.local_run import LambdaContext, event_for_slot, load_event


def settle(world, runs: int = 4, **env):
    """Runs with no faults, 15 minutes apart: long enough for uncertain sends to be checked."""
    for _ in range(runs):
        world.run(**env)


def exactly_one_each(world, users) -> bool:
    return world.dms_per_follower() == {u["id"]: 1 for u in users}


@pytest.fixture
def newcomers(world):
    world.run()  # baseline
    return world.x.add_followers(3, prefix="new")


# --- the process dies ---------------------------------------------------------


@pytest.mark.parametrize(
    "adapter, method, after",
    [
        ("ledger", "claim", False),  # before the claim
        ("x", "send_dm", False),  # between claim and send
        ("x", "send_dm", True),  # after X accepted the DM, before the ledger records it
        ("ledger", "mark_welcomed", False),  # the same, seen from the ledger
        ("ledger", "record_new", True),  # in the middle of recording what a scan found
        ("ledger", "known", False),  # before the page's followers are even looked up
    ],
)
def test_a_crash_at_any_point_never_sends_twice_and_everyone_is_welcomed_later(world, newcomers, adapter, method, after):
    wrap = {f"wrap_{adapter}": lambda a: CrashAt(a, method, nth=1, after=after)}
    with pytest.raises(Crash):
        world.run(**wrap)
    settle(world)
    assert exactly_one_each(world, newcomers)
    assert set(world.states()[u["id"]] for u in newcomers) == {"welcomed"}


@pytest.mark.parametrize("fault", ["crash", "error"])
def test_a_scan_of_several_pages_that_stops_midway_leaves_no_gap(world, fault):
    world.run()  # baseline
    burst = world.x.add_followers(40, prefix="burst")  # pages of 10, 20, 40: three requests
    if fault == "crash":
        with pytest.raises(Crash):
            world.run(wrap_x=lambda a: CrashAt(a, "followers_page", nth=2))
    else:
        second_page_fails = lambda a: At(a, "followers_page", lambda: world.x.fail_next("followers", 503), nth=2)  # noqa: E731
        assert world.run(wrap_x=second_page_fails).scan_complete is False
    settle(world, runs=6, max_welcomes_per_run=15)
    assert exactly_one_each(world, burst)


def test_a_connection_dropped_after_x_stored_the_dm_is_reconciled_not_resent(world, newcomers):
    world.x.drop_after_store_next()
    summary = world.run()
    assert summary.uncertain == 1 and summary.welcomed == 0
    settled = world.run()
    assert settled.reconciled_welcomed == 1
    settle(world)
    assert exactly_one_each(world, newcomers)


def test_a_send_that_times_out_is_uncertain_then_reconciled(world, newcomers, monkeypatch):
    from courtesy import x_account

    class SlowSends:
        """X is slow only to answer DM sends: well past a short read timeout, only for sends."""

        def __init__(self, account):
            self._account = account

        def __getattr__(self, name):
            return getattr(self._account, name)

        def send_dm(self, *args, **kwargs):
            world.x.latency_seconds = 1.0
            monkeypatch.setattr(x_account, "TIMEOUTS", (3.05, 0.2))
            try:
                return self._account.send_dm(*args, **kwargs)
            finally:
                monkeypatch.undo()
                world.x.latency_seconds = 0

    summary = world.run(wrap_x=SlowSends)
    assert summary.uncertain == 1 and summary.welcomed == 0
    settle(world)
    assert exactly_one_each(world, newcomers)


# --- X's answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body",
    [
        (429, None),
        (429, USAGE_CAPPED_BODY),
        (500, None),
        (503, ""),  # 503 with no body
        (502, "{not json"),
    ],
)
def test_an_error_on_send_never_duplicates_and_the_backlog_finishes(world, newcomers, status, body):
    world.x.fail_next("send_dm", status, body=body)
    summary = world.run()
    assert summary.welcomed == 0
    assert summary.rate_limited is (status == 429)
    settle(world)
    assert exactly_one_each(world, newcomers)


def test_the_24_hour_dm_limit_stops_sending_until_it_resets(world, newcomers):
    world.x.set_rate_limit("send_dm", 2, window_seconds=86400)
    first = world.run()
    assert first.welcomed == 2 and first.rate_limited
    assert not [r for r in world.x.requests if r["status"] == 429]  # read from the headers
    world.x.advance(86400)
    settle(world)
    assert exactly_one_each(world, newcomers)


@pytest.mark.parametrize(
    "status, body",
    [
        (503, ""),
        (500, None),
        (200, "{not json"),
        (200, {"data": "not a list", "meta": {}}),  # an unexpected page shape
        (200, {"data": [{"username": "no id"}], "meta": {"result_count": 1}}),
        (429, None),
    ],
)
def test_a_bad_followers_answer_loses_nothing_and_the_next_run_catches_up(world, newcomers, status, body):
    world.x.fail_next("followers", status, body=body)
    summary = world.run()
    assert summary.scan_complete is False and summary.welcomed == 0
    settle(world)
    assert exactly_one_each(world, newcomers)


def test_a_200_with_a_partial_errors_array_still_counts_its_data(world, newcomers):
    page = {
        "data": [{"id": u["id"], "name": u["name"], "username": u["username"]} for u in reversed(newcomers)],
        "errors": [{"title": "Partial error", "detail": "one user could not be returned", "type": "about:blank"}],
        "meta": {"result_count": 3},
    }
    world.x.fail_next("followers", 200, body=page)
    world.run()
    settle(world)
    assert exactly_one_each(world, newcomers)


def test_reconciliation_that_is_rate_limited_waits_without_resending(world, newcomers):
    world.x.drop_after_store_next()
    world.run()
    world.x.fail_next("dm_events", 429)
    blocked = world.run()
    assert blocked.uncertain == 1 and blocked.reconciled_welcomed == 0
    settle(world)
    assert exactly_one_each(world, newcomers)


# --- DynamoDB --------------------------------------------------------------------


def test_a_throttled_ledger_write_fails_the_run_and_loses_nothing(world, newcomers):
    world.dynamodb.throttle["update_item"] = 1  # the first claim
    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        world.run()
    settle(world)
    assert exactly_one_each(world, newcomers)


def test_unprocessed_keys_are_retried_so_no_known_follower_looks_new(world, newcomers):
    world.run()
    world.x.add_followers(2, prefix="more")
    world.dynamodb.unprocessed_batches = 3
    summary = world.run()
    assert summary.new_followers == 2
    assert max(world.dms_per_follower().values()) == 1


def test_a_claim_lost_to_another_run_is_skipped(world, newcomers):
    world.run(dry_run="true")  # queue them

    class Rival:
        """Another run claims each follower a moment before this one does."""

        def __init__(self, ledger):
            self._ledger = ledger

        def __getattr__(self, name):
            return getattr(self._ledger, name)

        def move(self, name, follower_id, **kwargs):
            if name == "claim":
                self._ledger.move(name, follower_id, fields={**kwargs["fields"], "run_id": "rival"})
            return self._ledger.move(name, follower_id, **kwargs)

    summary = world.run(wrap_ledger=Rival)
    assert summary.welcomed == 0 and world.x.dm_log == []


# --- deliveries and retries of the schedule -------------------------------------------


def test_the_same_slot_delivered_twice_at_once_runs_once(stack):
    stack.run()
    fans = stack.x.add_followers(4, prefix="new")
    stack.x.latency_seconds = 0.05  # keep the first delivery busy while the second arrives
    event = load_event()
    results, errors = [], []

    def deliver(app):
        try:
            results.append(app.lambda_handler(event, LambdaContext()))
        except Exception as exc:  # surfaced below: a thread would swallow it
            errors.append(exc)

    with stack.function.environment() as app:
        threads = [threading.Thread(target=deliver, args=(app,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [] and len(results) == 2
    first, second = sorted(results, key=lambda r: r.get("duplicate", False))
    assert "welcomed" in first
    # The second delivery either arrived while the first ran, or after it ended: a no-op both ways.
    assert second == {"slot": first["slot"], "duplicate": True} or second == first
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in fans}


def test_a_failed_run_retried_by_lambda_does_not_send_twice(stack):
    stack.run()
    fans = stack.x.add_followers(3, prefix="new")
    stack.x.drop_after_store_next()  # the first send's outcome is unknown: the run stops sending
    event = load_event()
    first = stack.run(event)
    stack.x.fail_next("send_dm", 401)  # the next run's credentials are refused: it fails
    stack.x.advance(15 * 60)
    failing = event_for_slot(stack.slot + timedelta(minutes=15))
    with pytest.raises(Exception, match="credentials"):
        stack.run(failing)
    assert stack.run(failing)["welcomed"] >= 0  # Lambda's retry of the failed slot runs again, safely
    assert stack.run(event) == first  # a late redelivery of the first slot: a no-op
    for _ in range(4):
        stack.x.advance(15 * 60)
        stack.run()
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in fans}


def test_a_run_near_its_timeout_stops_before_sending_and_the_next_run_finishes(world, newcomers):
    summary = world.run(time_left=10)
    assert summary.welcomed == 0 and world.x.dm_log == []
    settle(world)
    assert exactly_one_each(world, newcomers)


# --- followers come and go ---------------------------------------------------------


def test_a_follower_who_leaves_before_their_welcome_is_not_messaged(world, newcomers):
    world.run(dry_run="true")
    world.x.add_followers(30, prefix="later")
    world.run(dry_run="true")
    world.x.remove_follower(newcomers[0]["id"])
    settle(world, max_welcomes_per_run=100)
    assert newcomers[0]["id"] not in world.dms_per_follower()
    assert world.states()[newcomers[0]["id"]] == "departed"
    world.x.add_follower(newcomers[0]["id"])  # they come back: now they are welcomed, once
    settle(world, max_welcomes_per_run=100)
    assert world.dms_per_follower()[newcomers[0]["id"]] == 1


def test_a_follower_renamed_between_runs_is_greeted_by_their_new_name(world, newcomers):
    world.run(dry_run="true")
    world.x.rename(newcomers[0]["id"], username="newhandle", name="Renata Renamed")
    world.run(welcome_templates='["Hi {first_name} (@{username})!"]')
    assert world.x.dms_to(newcomers[0]["id"])[0]["text"] == "Hi Renata (@newhandle)!"


def test_baseline_followers_never_get_a_welcome_even_after_unfollowing_and_refollowing(world, newcomers):
    early = world.x.follower_ids()[-1]  # followed long before the baseline... but the newest of the early ones
    baseline_member = world.x.follower_ids()[3]
    world.x.remove_follower(baseline_member)
    world.x.add_follower(baseline_member)
    settle(world)
    assert baseline_member not in world.dms_per_follower() and early not in world.dms_per_follower()


@pytest.mark.parametrize("by", ["a scheduled run", "a batch of events"])
def test_a_run_starting_seconds_before_xs_dm_window_resets_waits_for_it_and_meets_no_429(world, by):
    """X's 15-DM window resets 15 minutes after its first send, a second or two after a run's tick.
    A run (or an event batch) starting just before the reset used to send at once, meet a 429 and
    lose its sends; it now waits the few seconds."""
    from tests.integration.test_event_worker import follow, handle

    world.run()  # the baseline
    fans = world.x.add_followers(17, prefix="new")
    first = world.run(advance_minutes=(15 * 60 - 10) / 60)  # the next starts 10 s before the reset
    assert first.welcomed == 15
    if by == "a scheduled run":
        assert world.run().welcomed == 2
    else:
        assert handle(world, follow(world, fans[-1]["id"])).welcomed == 2
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}
    assert not [r for r in world.x.requests if r["status"] == 429]
