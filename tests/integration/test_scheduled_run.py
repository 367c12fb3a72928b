"""The scheduled run end to end: the real handler, tweepy over HTTP to the X sandbox, moto.

Every promise is checked against the sandbox's own DM log."""

from __future__ import annotations

import json
import time

import pytest

from courtesy.errors import ConfigurationError, CredentialsMissing, CredentialsRejected, InvalidEvent
from tools.local_aws import LOCAL_NAMES
from tools.local_run import load_event

SUMMARY_KEYS = {
    "followers_read",
    "new_followers",
    "welcomed",
    "skipped",
    "failed",
    "pending",
    "uncertain",
    "dry_run",
    "rate_limited",
    "baseline",
}


def test_the_first_run_takes_a_baseline_from_one_small_page_and_sends_nothing(stack):
    summary = stack.run()
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["baseline"] is True and summary["welcomed"] == 0
    assert stack.x.dm_log == []
    assert stack.x.users_returned == summary["followers_read"] <= 50 < 120


def test_new_followers_each_get_exactly_one_welcome_and_reruns_send_nothing(stack):
    stack.run()
    newcomers = stack.x.add_followers(3, prefix="new")
    summary = stack.run()
    assert summary["new_followers"] == 3 and summary["welcomed"] == 3
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in newcomers}
    # Oldest follower first, and each message is personal.
    assert [dm["recipient_id"] for dm in stack.x.dm_log] == [u["id"] for u in newcomers]
    for dm, user in zip(stack.x.dm_log, newcomers, strict=True):
        assert user["name"].split()[0] in dm["text"] or user["username"] in dm["text"]
    stack.run()
    stack.run()
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in newcomers}
    assert {stack.state_of(u["id"]) for u in newcomers} == {"welcomed"}


def test_a_duplicate_delivery_of_the_same_slot_returns_the_first_summary_and_sends_nothing(stack):
    stack.run()
    stack.x.add_followers(2, prefix="new")
    event = load_event()
    first = stack.run(event)
    stack.x.add_followers(1, prefix="later")
    again = stack.run(event)
    assert again == first
    assert len(stack.x.dm_log) == 2


def test_an_unfollow_and_refollow_sends_nothing_more(stack):
    stack.run()
    [fan] = stack.x.add_followers(1, prefix="new")
    stack.run()
    stack.x.remove_follower(fan["id"])
    stack.run()
    stack.x.add_follower(fan["id"])
    summary = stack.run()
    assert summary["new_followers"] == 0
    assert stack.welcomes_per_follower() == {fan["id"]: 1}


def test_a_429_mid_run_stops_cleanly_and_the_next_run_finishes_the_backlog_without_duplicates(stack):
    stack.run()
    fans = stack.x.add_followers(6, prefix="new")
    stack.x.set_rate_limit("send_dm", 4)
    limited = stack.run()
    assert limited["rate_limited"] is True and limited["welcomed"] == 4 and limited["pending"] == 2
    assert not [r for r in stack.x.requests if r["status"] == 429]  # stopped by the headers, before a 429
    stack.x.advance(15 * 60)
    done = stack.run()
    assert done["welcomed"] == 2 and done["pending"] == 0
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in fans}


def test_an_actual_429_keeps_the_follower_pending_for_the_next_run(stack):
    stack.run()
    fans = stack.x.add_followers(3, prefix="new")
    stack.x.fail_next("send_dm", 429)
    summary = stack.run()
    assert summary["rate_limited"] is True and summary["welcomed"] == 0 and summary["pending"] == 3
    stack.x.advance(15 * 60)
    stack.run()
    assert stack.welcomes_per_follower() == {u["id"]: 1 for u in fans}


def test_a_recipient_who_cannot_be_messaged_is_recorded_and_skipped(stack):
    stack.run()
    fans = stack.x.add_followers(3, prefix="new")
    stack.x.fail_next("send_dm", 403)  # X refuses the first recipient
    summary = stack.run()
    assert summary["skipped"] == 1 and summary["welcomed"] == 2
    assert stack.state_of(fans[0]["id"]) == "undeliverable"
    assert "403" in stack.ledger_items()[fans[0]["id"]]["detail"]
    stack.run()
    assert fans[0]["id"] not in stack.welcomes_per_follower()


def test_a_follower_whose_dms_are_closed_is_skipped_without_a_send(stack):
    stack.run()
    fans = stack.x.add_followers(2, prefix="new")
    stack.x.set_receives_dm(fans[0]["id"], False)
    summary = stack.run()
    assert summary["skipped_by_reason"] == {"dms_closed": 1} and summary["welcomed"] == 1
    assert stack.ledger_items()[fans[0]["id"]]["reason"] == "dms_closed"
    assert not [r for r in stack.x.requests if r["status"] == 403]
    stack.x.set_receives_dm(fans[0]["id"], True)  # a skip is final: no surprise DM later
    stack.run()
    assert fans[0]["id"] not in stack.welcomes_per_follower()


def test_spam_like_followers_are_skipped_with_their_reason_and_notable_ones_get_their_own_message(stack):
    stack.run()
    spam = stack.x.add_follower(
        username="spammy", name="Spam", public_metrics={"followers_count": 1, "following_count": 4999, "tweet_count": 0}
    )
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stack.x.now() - 86_400))  # a day old
    throwaway = stack.x.add_follower(username="fresh", name="Fresh", created_at=created)
    star = stack.x.add_follower(username="star", name="Star Person", verified=True)
    blocked = stack.x.add_follower(username="Blocked_One", name="Blocked")
    regular = stack.x.add_follower(username="regular", name="Regular Person")
    notable = json.dumps(["Thank you {first_name}, truly!"])
    summary = stack.run(BLOCKLIST="@blocked_one", NOTABLE_TEMPLATES=notable)
    assert summary["skipped_by_reason"] == {"no_posts": 1, "too_new": 1, "blocklisted": 1}
    assert {stack.ledger_items()[u["id"]]["reason"] for u in (spam, throwaway, blocked)} == {"no_posts", "too_new", "blocklisted"}
    assert stack.welcomes_per_follower() == {star["id"]: 1, regular["id"]: 1}
    assert stack.x.dms_to(star["id"])[0]["text"] == "Thank you Star, truly!"
    assert stack.ledger_items()[star["id"]]["notable"] == "true"


def test_a_follower_blocked_after_being_queued_is_never_welcomed(stack):
    stack.run()
    [fan] = stack.x.add_followers(1, prefix="new")
    stack.run(DRY_RUN="true")
    summary = stack.run(BLOCKLIST=fan["id"])
    assert summary["skipped_by_reason"] == {"blocklisted": 1} and stack.x.dm_log == []
    stack.run()
    assert stack.x.dm_log == [] and stack.state_of(fan["id"]) == "skipped"


def test_the_per_run_and_daily_caps_hold(stack):
    stack.run()
    stack.x.add_followers(7, prefix="new")
    caps = {"MAX_WELCOMES_PER_RUN": "2", "DAILY_WELCOME_LIMIT": "5"}
    sent_per_run = []
    for _ in range(4):
        before = len(stack.x.dm_log)
        stack.run(**caps)
        sent_per_run.append(len(stack.x.dm_log) - before)
    assert sent_per_run == [2, 2, 1, 0]
    assert max(stack.welcomes_per_follower().values()) == 1


def test_dry_run_sends_nothing_and_reports_who_would_get_which_message(stack):
    stack.run(DRY_RUN="true")
    fans = stack.x.add_followers(2, prefix="new")
    summary = stack.run(DRY_RUN="true")
    assert stack.x.dm_log == []
    assert summary["dry_run"] is True and summary["welcomed"] == 0
    assert [w["follower_id"] for w in summary["would_welcome"]] == [u["id"] for u in fans]
    assert all(w["text"] for w in summary["would_welcome"])
    assert {stack.state_of(u["id"]) for u in fans} == {"pending"}
    # Going live later sends exactly what the dry run showed.
    stack.run()
    assert [dm["text"] for dm in stack.x.dm_log] == [w["text"] for w in summary["would_welcome"]]


def test_dry_run_is_the_default(stack):
    stack.function.env.pop("DRY_RUN")
    stack.run()
    stack.x.add_followers(1, prefix="new")
    assert stack.run()["dry_run"] is True
    assert stack.x.dm_log == []


@pytest.mark.parametrize(
    "templates, problem",
    [
        (json.dumps(["Hi {nickname}!"]), "unknown placeholder {nickname}"),
        (json.dumps([""]), "non-empty"),
        (json.dumps(["x" * 10_001]), "10000-character"),
        ("not json", "JSON array"),
    ],
)
def test_a_bad_template_fails_clearly_before_anything_is_sent(stack, templates, problem):
    stack.run()
    stack.x.add_followers(2, prefix="new")
    with pytest.raises(ConfigurationError, match=problem):
        stack.run(WELCOME_TEMPLATES=templates)
    assert stack.x.dm_log == []


def test_missing_credentials_fail_clearly_before_anything_is_sent(stack):
    stack.run()
    stack.x.add_followers(2, prefix="new")
    secrets = stack.aws.client("secretsmanager")
    secrets.put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps({"consumer_key": "k"}))
    with pytest.raises(CredentialsMissing, match="missing consumer_secret, access_token, access_token_secret"):
        stack.run()
    secrets.delete_secret(SecretId=LOCAL_NAMES["XCredentialsSecret"], ForceDeleteWithoutRecovery=True)
    with pytest.raises(CredentialsMissing, match="could not be read"):
        stack.run()
    assert stack.x.dm_log == []


def test_wrong_credentials_fail_the_run_without_leaking_them_and_lose_nothing(stack, capsys, log_lines):
    stack.run()
    [fan] = stack.x.add_followers(1, prefix="new")
    stack.run(DRY_RUN="true")  # the follower is queued
    wrong = {**stack.x.credentials, "access_token_secret": "wrong-secret-value-123"}
    stack.aws.client("secretsmanager").put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps(wrong))
    with pytest.raises(CredentialsRejected) as failure:
        stack.run()
    output = capsys.readouterr()
    logs = json.dumps(log_lines())
    assert "CredentialsRejected" in logs or "credentials" in str(failure.value)
    for value in wrong.values():
        assert value not in str(failure.value) and value not in output.out and value not in output.err and value not in logs
    assert stack.state_of(fan["id"]) == "pending" and stack.x.dm_log == []


def test_a_malformed_event_is_a_clear_error(stack):
    with pytest.raises(InvalidEvent, match="scheduled_time"):
        stack.run({"hello": "world"})
    with pytest.raises(InvalidEvent, match="ISO-8601"):
        stack.run({"scheduled_time": "yesterday"})


def test_an_eventbridge_rule_event_works_too(stack):
    summary = stack.run(
        {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-26T03:00:00Z", "detail": {}}
    )
    assert summary["baseline"] is True and summary["slot"] == "2026-11-26T03:00:00Z"


def test_the_run_emits_metrics_and_a_summary_log_with_the_slot_as_correlation_id(stack, capsys, log_lines):
    stack.run()
    stack.x.add_followers(2, prefix="new")
    stack.run()
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf and emf[-1]["WelcomesSent"] == [2.0] and emf[-1]["NewFollowers"] == [2.0]
    summary_logs = [line for line in log_lines() if line.get("message") == "Run summary"]
    assert summary_logs[-1]["correlation_id"] == summary_logs[-1]["summary"]["slot"]
    assert summary_logs[-1]["summary"]["welcomed"] == 2
