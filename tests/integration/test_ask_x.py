"""Ask X, don't guess: decisions from X's direct answers, and answers that contradict the
ledger not believed. Each case is one of the failures part 6 reproduced; every check reads
the sandbox's own DM log or the ledger, never Courtesy's counters alone."""

from __future__ import annotations

import pytest

from sandbox import DM_FORBIDDEN_BODY
from tests.faults import At


def settle(world, runs: int = 4, **env):
    for _ in range(runs):
        world.run(**env)


def dm_requests(world) -> int:
    return sum(1 for r in world.x.requests if r["method"] == "POST" and r["path"].endswith("/messages"))


# --- 1. an empty answer -----------------------------------------------------------------


def test_an_empty_first_page_for_an_account_with_followers_is_not_taken_for_a_baseline(world):
    early = world.x.follower_ids()
    world.x.empty_followers_next()
    first = world.run()
    assert first.scan_doubted and first.new_followers == 0
    assert not any(state == "baseline" for state in world.states().values()), "an empty answer became the baseline"
    second = world.run()  # X answers properly now: the baseline is taken
    assert second.baseline and not second.scan_doubted
    newcomer = world.x.add_followers(1, prefix="new")[0]
    settle(world, runs=6)
    # Nobody who followed before Courtesy started got anything; the newcomer got one welcome.
    assert world.dms_per_follower() == {newcomer["id"]: 1}
    assert not set(world.dms_per_follower()) & set(early)


def test_an_empty_page_on_a_later_run_records_nothing_and_marks_nobody_departed(world):
    world.run()  # baseline
    waiting = world.x.add_followers(8, prefix="new")
    world.run(max_welcomes_per_run=3)
    world.x.empty_followers_next()
    doubted = world.run(max_welcomes_per_run=3)
    assert doubted.scan_doubted and doubted.departed == 0
    assert "not believed" in " ".join(doubted.notes)
    assert "departed" not in world.states().values()
    settle(world, runs=4, max_welcomes_per_run=3)
    assert world.dms_per_follower() == {u["id"]: 1 for u in waiting}


def test_a_list_that_ends_without_any_known_follower_is_not_believed(world):
    world.run()  # baseline
    world.run()  # remembers the head
    fan = world.x.add_followers(1, prefix="new")[0]
    truncated = {"data": [{"id": fan["id"], "name": fan["name"], "username": fan["username"]}], "meta": {"result_count": 1}}
    world.x.fail_next("followers", 200, body=truncated)
    doubted = world.run()
    assert doubted.scan_doubted and doubted.new_followers == 0
    settle(world, runs=3)
    assert world.dms_per_follower() == {fan["id"]: 1}
    assert not [s for s in world.states().values() if s == "departed"]


def test_a_short_first_page_that_x_counts_as_complete_is_believed(world):
    for follower_id in world.x.follower_ids()[3:]:
        world.x.remove_follower(follower_id)
    first = world.run()
    assert first.baseline and not first.scan_doubted
    assert sorted(world.states().values()) == ["baseline"] * 3


# --- 2. a deep backlog ---------------------------------------------------------------------


@pytest.mark.long
def test_a_backlog_deeper_than_a_few_pages_keeps_being_welcomed_each_run(world):
    world.x.seed_followers(2_000, prefix="old")
    world.run()  # baseline
    world.x.add_followers(7_000, prefix="burst")
    world.run()  # records the burst, welcomes the 15 oldest of it
    sent_before, read_before = len(world.x.dm_log), world.x.users_returned
    for _ in range(3):
        world.run()
    assert len(world.x.dm_log) - sent_before == 45, "runs after the first stopped welcoming the backlog"
    # Each run reads a few followers (the first after a burst, one page sized for another
    # burst) and looks up its 15 candidates: never thousands a run.
    assert world.x.users_returned - read_before <= 1_000 + 2 * 50
    assert world.x.lookup_users_returned <= 3 * 15
    assert max(world.dms_per_follower().values()) == 1


# --- 3. a refusal about the account -----------------------------------------------------------


def test_refusals_of_the_account_stop_the_run_and_nobody_is_written_off(world):
    world.run()  # baseline
    waiting = world.x.add_followers(12, prefix="new")
    world.x.restrict_dm_sending()
    refused = world.run()
    assert refused.account_refused and refused.welcomed == 0
    assert dm_requests(world) == 3, "sending went on after three identical refusals"
    assert "undeliverable" not in world.states().values()
    second = world.run()
    third = world.run()
    assert second.account_refused and third.account_refused_runs == 3
    assert dm_requests(world) == 5, "each later run should try one send only"
    world.x.lift_dm_restriction()
    settle(world, runs=3)
    assert world.dms_per_follower() == {u["id"]: 1 for u in waiting}


def test_a_refusal_of_one_recipient_is_still_recorded_once_and_never_retried(world):
    world.run()  # baseline
    first, *others = world.x.add_followers(4, prefix="new")
    world.x.fail_next("send_dm", 403, body=DM_FORBIDDEN_BODY)
    summary = world.run()
    assert not summary.account_refused
    settle(world, runs=2)
    assert world.states()[first["id"]] == "undeliverable"
    assert world.dms_per_follower() == {u["id"]: 1 for u in others}
    assert dm_requests(world) == 4


# --- 4. "stop" from people Courtesy never wrote to ------------------------------------------------


def test_opt_outs_from_people_courtesy_never_wrote_to_are_recorded_silently(world):
    world.run(welcome_mode="reply")  # baseline
    world.run(welcome_mode="reply")  # notes where the inbox stands
    old = world.x.follower_ids()[0]
    stranger = world.x.add_user(username="stranger", name="Sam Stranger")["id"]
    newcomer = world.x.add_followers(1, prefix="new")[0]["id"]
    world.run(welcome_mode="reply")
    world.x.receive_dm(old, "cancel")
    world.x.receive_dm(stranger, "STOP")
    world.x.receive_dm(newcomer, "stop")
    settle(world, runs=3, welcome_mode="reply")
    assert world.x.dm_log == [], "someone who never heard from Courtesy got an automated message"
    states = world.states()
    assert states[old] == states[stranger] == states[newcomer] == "opted_out"
    settle(world, runs=2, welcome_mode="dm")  # honoured in every mode
    assert world.x.dm_log == []


# --- 5. a follower who still follows -----------------------------------------------------------


def test_a_refollow_at_the_top_of_the_list_does_not_make_waiting_followers_look_gone(world):
    early = world.x.follower_ids()
    for follower_id in early[1:]:
        world.x.remove_follower(follower_id)
    world.run()  # baseline: one follower
    waiting = world.x.add_followers(8, prefix="new")
    spam = world.x.add_followers(4, prefix="spam")  # newer, and skipped by the blocklist
    env = {"max_welcomes_per_run": 3, "blocklist": ",".join("@" + u["username"] for u in spam)}
    world.run(**env)
    world.run(**env)
    # The follower from before unfollows and follows again: back at the top of the list,
    # right where the last waiting followers were once seen just above.
    world.x.remove_follower(early[0])
    world.x.add_follower(early[0])
    settle(world, runs=3, **env)
    assert "departed" not in world.states().values()
    assert world.dms_per_follower() == {u["id"]: 1 for u in waiting}


def test_a_follower_who_really_left_is_asked_about_and_not_messaged(world):
    world.run()  # baseline
    stays, leaves = world.x.add_followers(2, prefix="new")  # the first to follow is welcomed first
    world.run(max_welcomes_per_run=1)
    world.x.remove_follower(leaves["id"])
    left = world.run()
    assert left.departed == 1 and left.presence_lookups == 1
    settle(world, runs=2)
    assert world.dms_per_follower() == {stays["id"]: 1}
    assert world.states()[leaves["id"]] == "departed"


# --- uncertain sends: one empty answer is not evidence ------------------------------------------------


def test_one_empty_conversation_answer_does_not_release_an_uncertain_send(world):
    world.run()  # baseline
    fan = world.x.add_followers(1, prefix="new")[0]
    world.x.drop_after_store_next()  # X stored it; the answer was lost
    assert world.run().uncertain == 1
    # X's lookup lags once: the conversation looks empty although the message is there.
    world.x.fail_next("dm_events", 200, body={"meta": {"result_count": 0}})
    checked = world.run()
    assert checked.reconciled_released == 0 and checked.reconciled_checked_once == 1
    settle(world, runs=3)
    assert world.dms_per_follower() == {fan["id"]: 1}
    assert world.states()[fan["id"]] == "welcomed"


def test_two_empty_answers_a_while_apart_release_an_uncertain_send(world):
    world.run()  # baseline
    fan = world.x.add_followers(1, prefix="new")[0]
    world.x.fail_next("send_dm", 500)  # X took the request and answered 500: nothing stored
    assert world.run().uncertain == 1
    assert world.run().reconciled_checked_once == 1
    assert world.run().reconciled_released == 1
    settle(world, runs=2)
    assert world.dms_per_follower() == {fan["id"]: 1}


# --- reply mode never loses a first message ------------------------------------------------------------


def test_a_follower_who_follows_and_writes_between_the_scan_and_the_inbox_read_is_still_welcomed(world):
    world.run(welcome_mode="reply")
    world.run(welcome_mode="reply")
    fan: dict = {}

    def follow_and_write() -> None:
        fan.update(world.x.add_followers(1, prefix="quick")[0])
        world.x.receive_dm(fan["id"], "hi! just followed")

    world.run(welcome_mode="reply", wrap_x=lambda a: At(a, "dm_events_page", follow_and_write))
    settle(world, runs=2, welcome_mode="reply")
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_a_stranger_who_writes_and_follows_days_later_is_not_answered_for_the_old_message(world):
    world.run(welcome_mode="reply")
    world.run(welcome_mode="reply")
    stranger = world.x.add_user(username="later", name="Lee Later")["id"]
    world.x.receive_dm(stranger, "hello")
    world.run(welcome_mode="reply")
    world.x.advance(2 * 86_400)
    world.x.add_follower(stranger)
    settle(world, runs=2, welcome_mode="reply")
    assert world.x.dm_log == []
    assert world.states()[stranger] == "pending"
