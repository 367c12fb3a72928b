"""The webhook worker (courtesy.event_worker) under faults and races with the schedule, over
its real adapters (XAccount over HTTP to the sandbox, the ledger on moto). The promise checked
against the sandbox's own DM log: every follower after the baseline is welcomed exactly once,
whatever mix of webhook events, redeliveries, crashes and scheduled runs reaches them."""

from __future__ import annotations

import pytest

from courtesy import event_worker
from tests.faults import Crash, CrashAt
from tests.integration.test_event_worker import (
    DM_SENDS_PER_15_MIN,
    after_baseline,  # noqa: F401 - a fixture
    follow,
    handle,
    state,
    unfollow,
)


def settle(world, runs: int = 4, **env: str) -> None:
    """Scheduled runs with no faults, 15 minutes apart: long enough for uncertain sends to be checked."""
    for _ in range(runs):
        world.run(**env)


# --- 1. a worker killed mid-event, the message redelivered by SQS ----------------


@pytest.mark.parametrize(
    "adapter, method, after",
    [
        ("x", "send_dm", False),  # claimed, nothing sent
        ("x", "send_dm", True),  # X took the DM, the ledger does not know
        ("ledger", "claim", True),  # claimed, nothing sent
        ("ledger", "mark_welcomed", False),  # X took the DM, not recorded as welcomed
        ("ledger", "record_new", True),  # recorded as pending, no dedupe record, no welcome
        ("ledger", "put_record", False),  # the event's effects done, its dedupe record never written
    ],
)
def test_a_worker_killed_mid_event_and_redelivered_welcomes_once(after_baseline, adapter, method, after):  # noqa: F811
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    body = follow(world, fan["id"])
    wrap = {f"wrap_{adapter}": lambda a: CrashAt(a, method, nth=1, after=after)}
    with pytest.raises(Crash):
        handle(world, body, **wrap)
    assert len(world.x.dms_to(fan["id"])) == (1 if after and method == "send_dm" or method == "mark_welcomed" else 0)
    handle(world, body)  # SQS delivers the same message again, to a healthy worker
    settle(world)
    assert world.dms_per_follower() == {fan["id"]: 1}
    assert state(world, fan["id"]) == "welcomed"


# --- 2. a day with the webhook invalid: the schedule catches up ---------------------


def test_a_day_without_events_is_caught_up_by_the_schedule_and_a_late_replay_sends_nothing(after_baseline):  # noqa: F811
    world = after_baseline
    fans = world.x.add_followers(30, prefix="quiet")
    runs = -(-len(fans) // DM_SENDS_PER_15_MIN) + 2  # enough 15-minute windows for X's DM limit, and a margin
    settle(world, runs=runs)
    expected = {f["id"]: 1 for f in fans}
    assert world.dms_per_follower() == expected
    world.x.advance(12 * 3600)  # the webhook comes back later that day; X replays what it missed
    result = handle(world, *[follow(world, f["id"]) for f in fans])
    assert result.welcomed == 0 and result.new_followers == 0 and not result.batch_item_failures
    assert result.outcomes == {event_worker.ALREADY_KNOWN: len(fans)}
    settle(world, runs=2)
    assert world.dms_per_follower() == expected


# --- 3. an event and a scan for the same follower ----------------------------------


def test_a_scan_then_the_event_welcomes_once(after_baseline):  # noqa: F811
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.run()  # the scan finds and welcomes them
    assert world.dms_per_follower() == {fan["id"]: 1}
    result = handle(world, follow(world, fan["id"]))  # the event arrives late
    assert result.outcomes == {event_worker.ALREADY_KNOWN: 1} and result.welcomed == 0
    settle(world, runs=2)
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_the_event_then_a_scan_welcomes_once(after_baseline):  # noqa: F811
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    result = handle(world, follow(world, fan["id"]))
    assert result.welcomed == 1
    settle(world, runs=2)  # the scans see them too
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_a_scan_that_queued_them_then_the_event_welcomes_once(after_baseline):  # noqa: F811
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.x.exhaust_rate_limit("send_dm")
    world.run()  # the scan queues them; the send must wait
    assert state(world, fan["id"]) == "pending" and world.dms_per_follower() == {}
    result = handle(world, follow(world, fan["id"]))  # the window has reset: the event welcomes
    assert result.welcomed == 1
    settle(world, runs=2)
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_a_follow_event_for_someone_already_welcomed_sends_nothing(after_baseline):  # noqa: F811
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    handle(world, follow(world, fan["id"]))
    assert world.dms_per_follower() == {fan["id"]: 1}
    world.x.remove_follower(fan["id"])  # they leave and follow again: a new event, a new uuid
    world.x.add_follower(fan["id"])
    result = handle(world, follow(world, fan["id"]))
    assert result.outcomes == {event_worker.ALREADY_KNOWN: 1} and result.welcomed == 0
    settle(world, runs=2)
    assert world.dms_per_follower() == {fan["id"]: 1}


# --- 4. duplicates interleaved with a scheduled run -----------------------------------


def test_duplicates_interleaved_with_a_scheduled_run_welcome_at_most_once(after_baseline):  # noqa: F811
    world = after_baseline
    stays, leaves = world.x.add_followers(2, prefix="new")
    world.x.exhaust_rate_limit("send_dm")  # nobody can be welcomed yet: both wait in the queue
    stays_follow, leaves_follow = follow(world, stays["id"]), follow(world, leaves["id"])
    first = handle(world, stays_follow, leaves_follow)
    assert first.new_followers == 2 and first.welcomed == 0
    world.x.remove_follower(leaves["id"])
    leaves_unfollow = unfollow(world, leaves["id"])
    handle(world, leaves_unfollow)
    assert state(world, leaves["id"]) == "departed"
    world.run()  # the scheduled run, between the deliveries
    again = handle(world, stays_follow, leaves_unfollow)  # both delivered again
    assert again.outcomes == {event_worker.DUPLICATE: 2}
    settle(world, runs=3)
    handle(world, stays_follow, leaves_follow, leaves_unfollow)  # and once more, late
    assert world.dms_per_follower() == {stays["id"]: 1}
    assert state(world, stays["id"]) == "welcomed" and state(world, leaves["id"]) == "departed"
