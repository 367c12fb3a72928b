"""The welcome cycle's decisions, over fake adapters: no network, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from courtesy.baseline import BASELINE_PAGE_SIZE
from courtesy.domain import Follower
from courtesy.errors import (
    CredentialsRejected,
    MessageRejected,
    RateLimited,
    RecipientCannotBeMessaged,
    SendOutcomeUnknown,
    XUnavailable,
)
from courtesy.lifecycle import State
from courtesy.scan import HEAD_MATCH
from courtesy.settings import Settings
from courtesy.welcome_cycle import WelcomeCycle
from tests.unit.fakes import FakeLedger, FakeX

BASE_ENV = {
    "LEDGER_TABLE_NAME": "ledger",
    "IDEMPOTENCY_TABLE_NAME": "idem",
    "X_CREDENTIALS_SECRET_ID": "secret",
    "DRY_RUN": "false",
}


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 26, 2, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, minutes: float) -> None:
        self.moment += timedelta(minutes=minutes)


@pytest.fixture
def world():
    return FakeX(followers=500), FakeLedger(), Clock()


def run(world, *, time_left=300.0, **env):
    x, ledger, clock = world
    settings = Settings.from_env({**BASE_ENV, **{k.upper(): str(v) for k, v in env.items()}})
    cycle = WelcomeCycle(x=x, ledger=ledger, settings=settings, now=clock, time_left=lambda: time_left, run_id=f"run-{clock().isoformat()}")
    summary = cycle.run()
    clock.advance(15)
    return summary


def test_given_an_empty_ledger_when_the_first_run_happens_then_one_small_page_is_read_and_nobody_is_messaged(world):
    x, ledger, _ = world
    summary = run(world)
    assert summary.baseline is True
    assert x.sent == []
    assert x.users_returned == BASELINE_PAGE_SIZE < 500
    assert set(ledger.states().values()) == {State.BASELINE}


def test_given_a_baseline_when_followers_arrive_then_each_gets_exactly_one_welcome_oldest_first(world):
    x, ledger, _ = world
    run(world)
    newcomers = x.follow(4)
    summary = run(world)
    assert [recipient for recipient, _ in x.sent] == [f.id for f in newcomers]  # follow() returns oldest first
    assert summary.welcomed == 4 and summary.new_followers == 4
    run(world)
    assert len(x.sent) == 4
    assert all(ledger.states()[f.id] == State.WELCOMED for f in newcomers)


def test_given_nothing_new_when_a_run_happens_then_it_reads_one_small_page(world):
    x, _, _ = world
    run(world)
    x.users_returned = 0
    x.page_sizes.clear()
    summary = run(world)
    assert len(x.page_sizes) == 1
    assert summary.followers_read == x.users_returned <= 10
    assert summary.new_followers == 0


def test_given_a_burst_bigger_than_a_page_when_scanning_then_pages_grow_and_stop_at_the_boundary(world):
    x, ledger, _ = world
    run(world)
    x.follow(700)
    summary = run(world, max_welcomes_per_run=1000, daily_welcome_limit=1440)
    assert summary.new_followers == 700
    assert x.page_sizes[-1] > x.page_sizes[-2]  # doubling while whole pages are new
    assert summary.followers_read < 700 + 2 * 700  # never the whole 1,200-strong list twice
    assert len(x.sent) == 700


def test_given_followers_known_before_when_they_unfollow_and_follow_again_then_no_second_welcome(world):
    x, _, _ = world
    run(world)
    [fan] = x.follow(1)
    run(world)
    x.followers.remove(fan)
    x.followers.insert(0, fan)
    summary = run(world)
    assert x.dms_to(fan.id) and len(x.dms_to(fan.id)) == 1
    assert summary.new_followers == 0


def test_given_a_baseline_follower_who_refollows_then_they_are_never_welcomed(world):
    x, _, _ = world
    run(world)
    old = x.followers[3]
    x.followers.remove(old)
    x.followers.insert(0, old)
    run(world)
    assert x.dms_to(old.id) == []


def test_given_slightly_out_of_order_results_then_a_new_follower_behind_the_first_known_one_is_still_found(world):
    x, _, _ = world
    run(world)
    [late] = x.follow(1)
    # Eventual consistency: the new follower shows up just below the newest known one.
    x.followers.remove(late)
    x.followers.insert(1, late)
    assert HEAD_MATCH >= 2
    run(world)
    assert len(x.dms_to(late.id)) == 1


@pytest.mark.parametrize("where", [slice(21, 26), slice(1, 11)], ids=["older followers", "the head"])
def test_given_followers_who_leave_and_come_back_above_a_newcomer_then_the_newcomer_is_still_found(world, where):
    x, _, _ = world
    run(world)
    [newcomer] = x.follow(1)
    for old in x.followers[where]:  # they come back one by one: the last one is now on top
        x.followers.remove(old)
        x.followers.insert(0, old)
    run(world)
    assert len(x.dms_to(newcomer.id)) == 1


def test_given_the_per_run_cap_then_the_rest_wait_for_the_next_run_without_rereading(world):
    x, _, _ = world
    run(world)
    x.follow(5)
    first = run(world, max_welcomes_per_run=2)
    assert (first.welcomed, first.pending) == (2, 3)
    second = run(world, max_welcomes_per_run=2)
    third = run(world, max_welcomes_per_run=2)
    assert (second.welcomed, third.welcomed, third.pending) == (2, 1, 0)
    assert len({r for r, _ in x.sent}) == len(x.sent) == 5


def test_given_the_daily_limit_then_no_more_welcomes_that_day_and_the_rest_follow_the_next_day(world):
    x, _, clock = world
    run(world)
    x.follow(5)
    run(world, daily_welcome_limit=3)
    summary = run(world, daily_welcome_limit=3)
    assert len(x.sent) == 3 and summary.welcomed == 0 and "daily welcome limit reached" in summary.notes
    clock.advance(24 * 60)
    run(world, daily_welcome_limit=3)
    assert len(x.sent) == 5


def test_given_a_429_mid_run_then_sending_stops_the_rest_stay_pending_and_the_next_run_finishes_the_backlog(world):
    x, ledger, clock = world
    run(world)
    fans = x.follow(5)
    x.send_errors[fans[2].id] = RateLimited("429", reset_at=clock().timestamp() + 600)
    summary = run(world)
    assert summary.rate_limited and summary.welcomed == 2 and summary.pending == 3
    assert ledger.states()[fans[2].id] == State.PENDING
    waiting = run(world)  # 15 minutes later: the reset has passed (600 s)
    assert waiting.welcomed == 3
    assert sorted(r for r, _ in x.sent) == sorted(f.id for f in fans)


def test_given_the_rate_window_is_spent_then_no_request_is_made_until_its_reset(world):
    x, _, clock = world
    run(world)
    x.follow(2)
    x.spent = RateLimited("spent", reset_at=clock().timestamp() + 3600)
    summary = run(world)
    assert summary.rate_limited and x.sent == [] and summary.pending == 2


def test_given_a_recipient_who_cannot_be_messaged_then_they_are_recorded_and_never_retried(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(3)
    x.send_errors[fans[0].id] = RecipientCannotBeMessaged("403: not permitted")
    summary = run(world)
    assert summary.skipped == 1 and summary.welcomed == 2
    assert ledger.states()[fans[0].id] == State.UNDELIVERABLE
    run(world)
    assert x.dms_to(fans[0].id) == []


def test_given_x_rejects_the_text_then_the_follower_is_marked_failed_and_not_retried(world):
    x, ledger, _ = world
    run(world)
    [fan] = x.follow(1)
    x.send_errors[fan.id] = MessageRejected("400")
    assert run(world).failed == 1
    run(world)
    assert ledger.states()[fan.id] == State.FAILED and x.dms_to(fan.id) == []


def test_given_a_5xx_before_the_send_was_accepted_then_the_follower_stays_queued_for_the_next_run(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(2)
    x.send_errors[fans[0].id] = XUnavailable("503")
    summary = run(world)
    assert summary.welcomed == 0 and summary.pending == 2
    run(world)
    assert [len(x.dms_to(f.id)) for f in fans] == [1, 1]


def test_given_an_unknown_send_outcome_then_it_is_not_resent_until_the_conversation_shows_no_message_twice(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(2)
    x.send_errors[fans[0].id] = SendOutcomeUnknown("read timeout")  # the request never reached X
    summary = run(world)
    assert summary.uncertain == 1 and ledger.states()[fans[0].id] == State.UNCERTAIN
    assert x.sent == []  # sending stops for the run: X may be in trouble
    checked = run(world)  # 15 minutes later: the conversation is checked, nothing there yet
    assert checked.reconciled_checked_once == 1 and checked.reconciled_released == 0 and x.lookups == 1
    assert x.dms_to(fans[0].id) == []
    settled = run(world)  # and again, a schedule interval later: still nothing, so never sent
    assert settled.reconciled_released == 1 and x.lookups == 2
    assert [len(x.dms_to(f.id)) for f in fans] == [1, 1] and ledger.states()[fans[0].id] == State.WELCOMED


def test_given_a_dm_stored_whose_answer_was_lost_then_reconciliation_records_it_without_resending(world):
    x, ledger, _ = world
    run(world)
    [fan] = x.follow(1)
    x.lose_answer_to.add(fan.id)
    assert run(world).uncertain == 1
    settled = run(world)
    assert settled.reconciled_welcomed == 1 and settled.uncertain == 0
    run(world)
    assert len(x.dms_to(fan.id)) == 1 and ledger.states()[fan.id] == State.WELCOMED


def test_given_an_uncertain_send_too_fresh_to_check_then_no_lookup_is_made(world):
    x, ledger, clock = world
    run(world)
    [fan] = x.follow(1)
    x.lose_answer_to.add(fan.id)
    run(world)
    clock.advance(-14)  # the next run comes a minute after the send
    assert run(world).reconciled_welcomed == 0 and x.lookups == 0


def test_given_an_uncertain_send_older_than_x_keeps_messages_then_it_stays_uncertain_forever(world):
    x, ledger, clock = world
    run(world)
    [fan] = x.follow(1)
    x.send_errors[fan.id] = SendOutcomeUnknown("read timeout")
    run(world)
    clock.advance(31 * 24 * 60)
    for _ in range(3):
        summary = run(world)
    assert summary.uncertain == summary.uncertain_expired == 1
    assert x.lookups == 0 and x.dms_to(fan.id) == []


def test_given_a_run_that_died_after_claiming_then_the_next_run_marks_it_uncertain_instead_of_resending(world):
    x, ledger, _ = world
    run(world)
    [fan] = x.follow(1)
    run(world, dry_run="true")
    assert ledger.move("claim", fan.id, fields={"run_id": "dead-run", "template_id": "t", "claimed_at": "2026-11-26T02:40:00.000000Z"})
    summary = run(world)
    assert ledger.states()[fan.id] == State.UNCERTAIN and summary.uncertain == 1 and x.sent == []
    run(world)
    run(world)  # two empty conversation lookups a schedule interval apart release it
    assert len(x.dms_to(fan.id)) == 1


def test_given_a_queued_follower_who_left_then_they_are_not_messaged_unless_they_come_back(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(3)
    run(world, max_welcomes_per_run=1)
    x.follow(20)
    x.followers.remove(fans[2])
    summary = run(world, max_welcomes_per_run=5)
    assert summary.departed == 1 and ledger.states()[fans[2].id] == State.DEPARTED
    assert x.dms_to(fans[2].id) == [] and len(x.dms_to(fans[1].id)) == 1
    x.followers.insert(0, fans[2])
    run(world, max_welcomes_per_run=50)
    assert len(x.dms_to(fans[2].id)) == 1


def test_given_a_follower_renamed_before_their_welcome_then_the_new_name_is_used(world):
    x, ledger, _ = world
    run(world)
    [fan] = x.follow(1)
    run(world, dry_run="true")
    x.followers[0] = Follower(fan.id, "renamed", "Zelda Newname")
    run(world, welcome_templates='["Hi {first_name} @{username}"]')
    assert x.dms_to(fan.id) == ["Hi Zelda @renamed"]


def test_given_rejected_credentials_then_the_run_fails_and_the_follower_is_still_pending(world):
    x, ledger, _ = world
    run(world)
    [fan] = x.follow(1)
    x.send_errors[fan.id] = CredentialsRejected("401")
    with pytest.raises(CredentialsRejected):
        run(world)
    assert ledger.states()[fan.id] == State.PENDING


def test_given_dry_run_then_nothing_is_sent_the_preview_names_each_message_and_nobody_is_marked_welcomed(world):
    x, ledger, _ = world
    run(world, dry_run="true")
    fans = x.follow(2)
    summary = run(world, dry_run="true")
    assert x.sent == [] and summary.dry_run
    assert [p["follower_id"] for p in summary.would_welcome] == [f.id for f in fans]
    assert all(p["text"] for p in summary.would_welcome)
    assert {ledger.states()[f.id] for f in fans} == {State.PENDING}


def test_given_a_follower_scan_failure_then_the_queue_is_still_welcomed_once_x_confirms_they_follow(world):
    x, _, _ = world
    run(world)
    fans = x.follow(3)
    run(world, max_welcomes_per_run=1)
    x.followers.remove(fans[2])  # leaves while the scan cannot read the list
    x.page_error = XUnavailable("503")
    summary = run(world)
    assert summary.scan_complete is False and summary.welcomed == 1 and summary.departed == 1
    assert x.users_looked_up == [fans[1].id, fans[2].id]
    x.page_error = None
    run(world)
    assert sorted(r for r, _ in x.sent) == sorted(f.id for f in fans[:2])


def test_given_the_lambda_is_nearly_out_of_time_then_no_send_starts_and_the_next_run_catches_up(world):
    x, _, _ = world
    run(world)
    fans = x.follow(6)
    summary = run(world, time_left=5)
    assert x.sent == [] and summary.welcomed == 0
    run(world)
    assert sorted(r for r, _ in x.sent) == sorted(f.id for f in fans)


def test_given_full_baseline_mode_then_every_current_follower_is_recorded_over_runs_and_none_welcomed(world):
    x, ledger, _ = world
    x.follow(25_000 - 500)
    first = run(world, baseline_mode="full")
    assert first.baseline and "full baseline continues next run" in first.notes
    second = run(world, baseline_mode="full")
    assert second.baseline and ledger.meta.baseline_done
    assert len(ledger.items) == 25_000
    newcomers = x.follow(2)
    run(world, baseline_mode="full")
    assert sorted(r for r, _ in x.sent) == sorted(f.id for f in newcomers)


def test_given_the_same_refusal_for_three_recipients_in_a_row_then_it_is_the_account_and_they_wait(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(5)
    for fan in fans[:3]:
        x.send_errors[fan.id] = MessageRejected("400: the account may not send this")
    summary = run(world)
    assert summary.account_refused and summary.failed == 0 and x.sent == []
    assert [ledger.states()[f.id] for f in fans] == [State.PENDING] * 5
    assert run(world).welcomed == 5 and not ledger.meta.refusals


def test_given_refusals_that_differ_or_are_broken_by_a_send_then_each_recipient_is_written_off_once(world):
    x, ledger, _ = world
    run(world)
    fans = x.follow(5)
    x.send_errors[fans[0].id] = RecipientCannotBeMessaged("403: closed")
    x.send_errors[fans[1].id] = RecipientCannotBeMessaged("403: closed")
    x.send_errors[fans[3].id] = RecipientCannotBeMessaged("403: closed")
    summary = run(world)
    assert not summary.account_refused and summary.welcomed == 2 and summary.skipped == 3
    assert [ledger.states()[f.id] for f in fans] == [State.UNDELIVERABLE, State.UNDELIVERABLE, State.WELCOMED] * 1 + [
        State.UNDELIVERABLE,
        State.WELCOMED,
    ]
