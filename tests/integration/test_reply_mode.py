"""Reply mode end to end: no unsolicited DM; a follower who writes first gets one welcome;
opt-outs are confirmed once and honoured for good. Checked against the sandbox's DM log."""

from __future__ import annotations

import pytest

from courtesy.lifecycle import State
from tests.faults import Crash, CrashAt

REPLY = {"welcome_mode": "reply"}


def start_reply_mode(world, **env):
    """The baseline, then the first reply-mode run, which notes where the inbox stands."""
    world.run(**REPLY, **env)
    world.run(**REPLY, **env)


def confirmations_to(x, user_id: str) -> list[str]:
    return [dm["text"] for dm in x.dms_to(user_id) if dm["text"].startswith("Got it")]


def test_given_reply_mode_new_followers_get_nothing_until_they_write_then_exactly_one_welcome(world):
    start_reply_mode(world)
    writer, quiet = world.x.add_followers(2, prefix="new")
    world.run(**REPLY)
    assert world.x.dm_log == [], "reply mode sent an unsolicited DM"
    world.x.receive_dm(writer["id"], "Hi! Love your work")
    summary = world.run(**REPLY)
    assert summary.welcomed == 1 and summary.replies_due == 1
    assert [dm["recipient_id"] for dm in world.x.dm_log] == [writer["id"]]
    assert writer["name"].split()[0] in world.x.dm_log[0]["text"] or writer["username"] in world.x.dm_log[0]["text"]
    world.x.receive_dm(writer["id"], "thanks!")
    world.x.receive_dm(writer["id"], "one more thing")
    for _ in range(3):
        world.run(**REPLY)
    assert world.dms_per_follower() == {writer["id"]: 1}
    assert world.states()[quiet["id"]] == State.PENDING


def test_an_old_message_is_history_but_a_new_one_is_answered(world):
    world.run(**REPLY)  # baseline: the inbox is not read by the baseline run
    fan = world.x.add_followers(1, prefix="new")[0]
    world.x.receive_dm(fan["id"], "written before reply mode read the inbox")
    world.run(**REPLY)  # records the follower, then notes the inbox's newest event
    world.run(**REPLY)
    assert world.x.dm_log == []
    world.x.receive_dm(fan["id"], "and now again")
    world.run(**REPLY)
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_followers_from_before_the_baseline_and_strangers_who_write_are_left_alone(world):
    start_reply_mode(world)
    old = world.x.follower_ids()[0]
    stranger = world.x.add_user(username="stranger", name="Sam Stranger")["id"]
    world.x.receive_dm(old, "hi there")
    world.x.receive_dm(stranger, "hello, do you sell gift cards?")
    world.run(**REPLY)
    world.run(**REPLY)
    assert world.x.dm_log == []


def test_strangers_who_write_get_one_answer_when_the_operator_asks_for_it(world):
    start_reply_mode(world, reply_to_non_followers="true")
    stranger = world.x.add_user(username="stranger", name="Sam Stranger")["id"]
    world.x.receive_dm(stranger, "hello, do you sell gift cards?")
    world.x.receive_dm(stranger, "hello?")
    for _ in range(3):
        world.run(**REPLY, reply_to_non_followers="true")
    assert world.dms_per_follower() == {stranger: 1}
    text = world.x.dms_to(stranger)[0]["text"]
    assert "follow" not in text.lower(), "a non-follower was thanked for a follow"
    assert "Sam" in text


@pytest.mark.parametrize("message", ["STOP", "stop.", "Stop!!", " unsubscribe ", "Opt-out", "STOP 🛑"])
def test_an_opt_out_after_a_welcome_gets_one_confirmation_and_nothing_ever_again_in_any_mode(world, message):
    start_reply_mode(world)
    fan = world.x.add_followers(1, prefix="new")[0]
    world.run(**REPLY)
    world.x.receive_dm(fan["id"], "hello!")
    assert world.run(**REPLY).welcomed == 1
    world.x.receive_dm(fan["id"], message)
    summary = world.run(**REPLY)
    assert summary.opted_out == 1 and summary.confirmations_sent == 1 and summary.welcomed == 0
    assert len(confirmations_to(world.x, fan["id"])) == 1
    world.x.receive_dm(fan["id"], "hi again, actually")
    world.x.receive_dm(fan["id"], "STOP")
    for mode in ("reply", "dm", "digest", "dm"):
        world.run(welcome_mode=mode)
    assert len(world.x.dms_to(fan["id"])) == 2, "messaged again after opting out"
    assert world.states()[fan["id"]] == State.OPTED_OUT


def test_an_opt_out_as_a_first_message_is_honoured_silently_in_every_mode(world):
    start_reply_mode(world)
    fan = world.x.add_followers(1, prefix="new")[0]
    world.run(**REPLY)
    world.x.receive_dm(fan["id"], "STOP")
    summary = world.run(**REPLY)
    assert summary.opted_out == 1 and summary.confirmations_sent == 0
    for mode in ("reply", "dm", "digest", "dm"):
        world.run(welcome_mode=mode)
    assert world.x.dm_log == [], "someone Courtesy never wrote to got an automated message"
    item = world.stack.ledger_items()[fan["id"]]
    assert item["state"] == State.OPTED_OUT and item["confirmation"] == "not-needed"


def test_a_message_that_only_mentions_stop_is_not_an_opt_out(world):
    start_reply_mode(world)
    fan = world.x.add_followers(1, prefix="new")[0]
    world.run(**REPLY)
    world.x.receive_dm(fan["id"], "Don't stop what you're doing, love it")
    world.run(**REPLY)
    assert world.states()[fan["id"]] == State.WELCOMED
    assert confirmations_to(world.x, fan["id"]) == []


def test_an_opt_out_in_a_dry_run_is_recorded_and_nothing_is_sent(world):
    start_reply_mode(world)
    fan = world.x.add_followers(1, prefix="new")[0]
    world.run(**REPLY)
    world.x.receive_dm(fan["id"], "hi")
    world.run(**REPLY)  # welcomed, live
    world.x.receive_dm(fan["id"], "stop")
    world.run(**REPLY, dry_run="true")
    world.run(**REPLY)  # live again: still nothing more for them, not even a late confirmation
    assert len(world.x.dm_log) == 1 and confirmations_to(world.x, fan["id"]) == []
    item = world.stack.ledger_items()[fan["id"]]
    assert item["state"] == State.OPTED_OUT and item["confirmation"] == "dry-run"


def test_a_burst_larger_than_one_runs_reading_is_read_over_several_runs_and_each_writer_gets_one(world):
    start_reply_mode(world)
    fans = world.x.add_followers(40, prefix="new")
    world.run(**REPLY)
    for fan in fans:
        for n in range(20):  # 800 messages: more than one run reads (8 growing pages)
            world.x.receive_dm(fan["id"], f"message {n}")
    for _ in range(4):
        world.run(**REPLY, max_welcomes_per_run="50")
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}


def test_the_inbox_cursor_reads_each_event_about_once(world):
    start_reply_mode(world)
    fans = world.x.add_followers(5, prefix="new")
    world.run(**REPLY)
    world.x.reset_counters()
    runs = 30
    for n in range(runs):
        if n % 3 == 0:
            world.x.receive_dm(fans[n % 5]["id"], f"hello {n}")
        world.run(**REPLY)
    inbound = len(world.x.inbound_dms)
    sent = len(world.x.dm_log)
    # Every event (received or sent) is read once, plus at most one already-read event a
    # run: the one at the cursor, which tells the run it has met what it knows.
    assert world.x.dm_events_returned <= inbound + sent + runs
    assert sent == 5


def test_a_rate_limited_or_failing_inbox_loses_no_message(world):
    start_reply_mode(world)
    fan = world.x.add_followers(1, prefix="new")[0]
    world.run(**REPLY)
    world.x.receive_dm(fan["id"], "hi")
    world.x.fail_next("dm_events", 429)
    world.run(**REPLY)
    world.x.fail_next("dm_events", 503)
    world.run(**REPLY)
    assert world.x.dm_log == []
    world.run(**REPLY)
    assert world.dms_per_follower() == {fan["id"]: 1}


@pytest.mark.parametrize("method", ["ask_reply", "opt_out", "save_meta", "claim_confirmation"])
def test_a_crash_while_reading_the_inbox_changes_nothing_of_the_promise(world, method):
    start_reply_mode(world)
    fan, quitter = world.x.add_followers(2, prefix="new")
    world.run(**REPLY)
    world.x.receive_dm(quitter["id"], "hi")
    world.run(**REPLY)  # the quitter is welcomed, so their opt-out is confirmed
    world.x.receive_dm(fan["id"], "hello")
    world.x.receive_dm(quitter["id"], "unsubscribe")
    with pytest.raises(Crash):
        world.run(**REPLY, wrap_ledger=lambda ledger: CrashAt(ledger, method))
    for _ in range(3):
        world.run(**REPLY)
    assert len(world.x.dms_to(fan["id"])) == 1
    assert len(confirmations_to(world.x, quitter["id"])) <= 1
    assert len([dm for dm in world.x.dms_to(quitter["id"]) if not dm["text"].startswith("Got it")]) == 1
    assert world.states()[quitter["id"]] == State.OPTED_OUT
