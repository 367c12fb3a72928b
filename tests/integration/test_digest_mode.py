"""Digest mode end to end, through the real handler: no automated DM at all; once a day the
operator gets, through the alarm topic (SNS on moto), every new follower exactly once,
notable ones first, with a profile link and a suggested note."""

from __future__ import annotations

from datetime import timedelta

import pytest

from courtesy.errors import DigestNotPublished
from courtesy.ledger import State
from tests.faults import Crash, CrashAt
from tests.integration.conftest import digest_event, listed_usernames
from tools.local_aws import LOCAL_NAMES

DIGEST = {"WELCOME_MODE": "digest"}


def test_given_digest_mode_each_new_follower_is_listed_once_notable_first_and_nobody_gets_a_dm(stack, inbox):
    stack.run(**DIGEST)  # baseline
    plain = stack.x.add_followers(3, prefix="fan")
    star = stack.x.add_follower(
        username="bigname",
        name="Big Name",
        public_metrics={"followers_count": 50_000, "following_count": 10, "tweet_count": 900, "listed_count": 3},
    )
    stack.run(**DIGEST)
    summary = stack.run(digest_event(stack), **DIGEST)
    assert summary["listed"] == 4 and summary["notable"] == 1
    (message,) = inbox.messages()
    listed = listed_usernames(message["body"])
    assert listed[0] == "bigname", "notable followers come first"
    assert sorted(listed) == sorted(["bigname", *(u["username"] for u in plain)])
    assert "Suggested note: " in message["body"] and "4 new followers" in message["subject"]
    for user in plain:
        assert f"https://x.com/{user['username']}" in message["body"]
    assert stack.x.dm_log == [], "digest mode sent a DM"
    # The next day: only followers new since then; none at all means no e-mail.
    stack.run(**DIGEST)
    stack.slot += timedelta(days=1)
    assert stack.run(digest_event(stack), **DIGEST)["listed"] == 0
    assert inbox.messages() == []
    late = stack.x.add_followers(1, prefix="late")[0]
    stack.run(**DIGEST)
    stack.slot += timedelta(days=1)
    stack.run(digest_event(stack), **DIGEST)
    assert [listed_usernames(m["body"]) for m in inbox.messages()] == [[late["username"]]]
    assert {stack.state_of(u["id"]) for u in [*plain, star, late]} == {State.LISTED}
    assert stack.x.dm_log == []


def test_a_digest_that_dies_after_publishing_lists_its_followers_again_marked_as_such(stack, inbox, monkeypatch):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    from courtesy import ledger as ledger_module

    original = ledger_module.Ledger.mark_listed

    def die(self, *args, **kwargs):
        raise Crash("died after publishing, before recording")

    monkeypatch.setattr(ledger_module.Ledger, "mark_listed", die)
    with pytest.raises(Crash):
        stack.run(digest_event(stack), **DIGEST)
    monkeypatch.setattr(ledger_module.Ledger, "mark_listed", original)
    stack.slot += timedelta(days=1)
    summary = stack.run(digest_event(stack), **DIGEST)
    assert summary["listed"] == 2 and summary["listed_again"] == 2
    first, second = inbox.messages()
    assert sorted(listed_usernames(first["body"])) == sorted(listed_usernames(second["body"])) == sorted(u["username"] for u in fans)
    assert second["body"].count("may be in an earlier digest") == 2
    assert {stack.state_of(u["id"]) for u in fans} == {State.LISTED}


def test_a_digest_sns_refuses_fails_the_run_and_its_followers_wait_for_the_next(stack, inbox):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    with pytest.raises(DigestNotPublished):
        stack.run(digest_event(stack), **DIGEST, DIGEST_TOPIC_ARN=LOCAL_NAMES["AlarmTopic"] + "-missing")
    assert {stack.state_of(u["id"]) for u in fans} == {State.PENDING}
    stack.slot += timedelta(days=1)
    assert stack.run(digest_event(stack), **DIGEST)["listed"] == 2
    (message,) = inbox.messages()
    assert "may be in an earlier digest" not in message["body"]


def test_a_digest_event_outside_digest_mode_does_nothing(stack, inbox):
    stack.run()
    stack.x.add_followers(2, prefix="fan")
    summary = stack.run(digest_event(stack))
    assert summary["skipped_run"] is True
    assert inbox.messages() == []


def test_the_scheduled_runs_and_the_digest_with_the_same_time_are_different_runs(stack, inbox):
    stack.run(**DIGEST)
    stack.x.add_followers(1, prefix="fan")
    run = stack.run(**DIGEST)
    same_time = {"source": "courtesy.digest", "scheduled_time": stack.slot.strftime("%Y-%m-%dT%H:%M:%SZ")}
    digest = stack.run(same_time, **DIGEST)
    assert run.keys() != digest.keys() and digest["listed"] == 1


def test_a_crash_in_the_scan_of_digest_mode_loses_nobody(stack, inbox, monkeypatch):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(3, prefix="fan")
    from courtesy import welcome_cycle

    real = welcome_cycle.WelcomeCycle.__init__

    def crashing(self, **kwargs):
        real(self, **kwargs)
        self.ledger = CrashAt(self.ledger, "queue_new", nth=2)

    monkeypatch.setattr(welcome_cycle.WelcomeCycle, "__init__", crashing)
    with pytest.raises(Crash):
        stack.run(**DIGEST)
    monkeypatch.undo()
    stack.run(**DIGEST)
    stack.run(digest_event(stack), **DIGEST)
    (message,) = inbox.messages()
    assert sorted(listed_usernames(message["body"])) == sorted(u["username"] for u in fans)
