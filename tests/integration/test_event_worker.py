"""The webhook worker (courtesy.event_worker) over its real adapters: XAccount over HTTP to the
sandbox, the ledger on moto. Event bodies are built from the sandbox's users as X's payload is
(follow.follow / follow.unfollow: source = the follower, target = the followed user). Welcomes are
counted from the sandbox's own DM log."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import pytest

from courtesy import event_worker
from courtesy.domain import wake_up_event
from courtesy.errors import CredentialsRejected
from courtesy.event_worker import handle_events
from courtesy.ledger import RECENT_EVENTS_KEY, Ledger
from courtesy.lifecycle import State
from courtesy.settings import Settings
from courtesy.x_account import XAccount
from tests.integration.conftest import BASE_ENV
from tools.local_aws import LOCAL_NAMES

DM_SENDS_PER_15_MIN = 15  # the sandbox's send_dm window (sandbox.x_sandbox.DEFAULT_RATE_LIMITS)


def user_object(world, user_id: str) -> dict[str, Any]:
    user = world.x.user(user_id)
    user.pop("receives_your_dm", None)  # not in event payloads (as the sandbox's own deliveries)
    return user


def event_body(world, event_type: str, source_id: str, target_id: str, uuid: str | None = None) -> dict[str, Any]:
    return {
        "event_uuid": uuid or str(secrets.randbits(64) - 2**63),
        "filter": {"user_id": world.x.account_id},
        "event_type": event_type,
        "tag": "courtesy",
        "payload": {"source": {"data": user_object(world, source_id)}, "target": {"data": user_object(world, target_id)}},
        "includes": {},
    }


def follow(world, user_id: str, **kw) -> dict[str, Any]:
    return event_body(world, "follow.follow", user_id, world.x.account_id, **kw)


def unfollow(world, user_id: str, **kw) -> dict[str, Any]:
    return event_body(world, "follow.unfollow", user_id, world.x.account_id, **kw)


def dm_received(world, dm: dict[str, Any], uuid: str | None = None) -> dict[str, Any]:
    """A dm.received event for a message the sandbox received (receive_dm's record), as X sends it."""
    created = datetime.fromisoformat(dm["created_at"].replace("Z", "+00:00"))
    message = {
        "type": "message_create",
        "id": dm["dm_event_id"],
        "created_timestamp": str(int(created.timestamp() * 1000)),
        "message_create": {
            "target": {"recipient_id": dm["recipient_id"]},
            "sender_id": dm["sender_id"],
            "message_data": {"text": dm["text"]},
        },
    }
    users = {uid: user_object(world, uid) for uid in (dm["sender_id"], dm["recipient_id"])}
    return {
        "event_uuid": uuid or str(secrets.randbits(64) - 2**63),
        "filter": {"user_id": world.x.account_id},
        "event_type": "dm.received",
        "tag": "courtesy",
        "payload": {"direct_message_events": [message], "users": users},
        "includes": {},
    }


def sqs_record(n: int, body: Any) -> dict[str, Any]:
    return {
        "messageId": f"m-{n}",
        "receiptHandle": f"r-{n}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:courtesy-events",
        "awsRegion": "us-east-1",
    }


_batches = 0


def handle(world, *bodies, wrap_x=None, wrap_ledger=None, time_left: float = 300.0, wake_up=None, **env: str) -> event_worker.WorkerResult:
    """One SQS batch of these event bodies; the XAccount and the Ledger pass through the wrappers if given."""
    global _batches
    _batches += 1
    settings = Settings.from_env({**BASE_ENV, **{k.upper(): str(v) for k, v in env.items()}})
    x_account = XAccount(world.x.credentials, base_url=world.x.base_url, clock=world.x.now)
    ledger = Ledger(world.dynamodb, LOCAL_NAMES["LedgerTable"], sleep=lambda _: None)
    try:
        return handle_events(
            [sqs_record(i, b) for i, b in enumerate(bodies)],
            x=wrap_x(x_account) if wrap_x else x_account,
            ledger=wrap_ledger(ledger) if wrap_ledger else ledger,
            settings=settings,
            now=world.now,
            time_left=lambda: time_left,
            run_id=f"events-{_batches}",
            sleep=world.x.advance,  # a wait for X's DM window passes on the sandbox's clock
            wake_up=wake_up,
        )
    finally:
        x_account.close()


def state(world, follower_id: str) -> str | None:
    item = world.stack.ledger_items().get(follower_id)
    return item["state"] if item else None


@pytest.fixture
def after_baseline(world):
    world.run()  # the baseline
    return world


def test_a_follow_event_after_the_baseline_welcomes_the_follower_once(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    result = handle(world, follow(world, fan["id"]))
    assert result.welcomed == 1 and result.new_followers == 1
    assert world.dms_per_follower() == {fan["id"]: 1}
    assert state(world, fan["id"]) == "welcomed"


def test_the_same_event_twice_welcomes_once(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    body = follow(world, fan["id"])
    first = handle(world, body, body)  # twice in one batch
    again = handle(world, body)  # and delivered again later
    assert world.dms_per_follower() == {fan["id"]: 1}
    assert first.outcomes == {event_worker.HANDLED: 1, event_worker.DUPLICATE: 1}
    assert again.outcomes == {event_worker.DUPLICATE: 1} and again.welcomed == 0


def test_an_event_then_scheduled_runs_welcome_once(after_baseline):
    world = after_baseline
    fans = world.x.add_followers(2, prefix="new")
    handle(world, follow(world, fans[0]["id"]))
    for _ in range(3):
        world.run()
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}


def test_an_event_before_the_baseline_does_nothing(world):
    [fan] = world.x.add_followers(1, prefix="new")
    result = handle(world, follow(world, fan["id"]))
    assert result.outcomes == {event_worker.BEFORE_BASELINE: 1}
    assert world.dms_per_follower() == {} and state(world, fan["id"]) is None
    world.run()  # the baseline takes them: followers from before it are never welcomed
    world.run()
    assert world.dms_per_follower() == {} and state(world, fan["id"]) == "baseline"


def test_an_unfollow_before_the_welcome_marks_them_departed_and_nothing_is_sent(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.x.exhaust_rate_limit("send_dm")  # the welcome cannot go out yet: they stay pending
    first = handle(world, follow(world, fan["id"]))
    assert first.rate_limited and state(world, fan["id"]) == "pending"
    world.x.remove_follower(fan["id"])
    second = handle(world, unfollow(world, fan["id"]))
    assert second.departed == 1 and state(world, fan["id"]) == "departed"
    world.x.advance(24 * 3600)  # every DM window reset
    world.run()
    assert world.dms_per_follower() == {}


def test_an_old_follow_replayed_after_they_left_is_checked_with_x_and_sends_nothing(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.x.exhaust_rate_limit("send_dm")  # queued, not welcomed yet
    old_follow = follow(world, fan["id"])
    handle(world, old_follow)
    world.x.remove_follower(fan["id"])
    handle(world, unfollow(world, fan["id"]))
    assert state(world, fan["id"]) == "departed"
    world.x.advance(24 * 3600)  # every DM window reset
    replayed = {**old_follow, "event_uuid": str(secrets.randbits(63))}  # X's replay, or a late delivery
    result = handle(world, replayed)
    assert world.dms_per_follower() == {} and result.welcomed == 0
    assert state(world, fan["id"]) == "departed"  # X, asked, says they do not follow


@pytest.mark.parametrize("unfollow_event", ["delivered first", "never delivered"])
def test_a_late_follow_event_for_someone_who_left_sends_nothing_and_costs_them_no_welcome(after_baseline, unfollow_event):
    """Found by the exactly-once campaign: the worker took a follow event for someone the ledger
    never saw as proof they follow now, sent, met X's refusal, wrote them off, and never
    welcomed them when they really followed again."""
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    late_follow = follow(world, fan["id"])  # X holds this event back
    world.x.remove_follower(fan["id"])  # they leave before it is delivered
    if unfollow_event == "delivered first":
        handle(world, unfollow(world, fan["id"]))  # out of order: the ledger does not know them yet
    world.run()  # a scan between: they do not follow, it sees nothing
    handle(world, late_follow)
    assert world.dms_per_follower() == {} and state(world, fan["id"]) == "departed"
    world.x.add_follower(fan["id"])  # they follow again, after the baseline
    handle(world, follow(world, fan["id"]))
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_a_late_unfollow_from_before_they_followed_again_does_not_cost_a_follower_their_digest_listing(world):
    """Found by the exactly-once campaign (digest mode), minimised: an unfollow event delivered late
    (X's delay or reordering, or `courtesy webhook replay`), after the follower followed again, was
    taken at its word and marked a current follower departed; the scans never take back someone
    at the head of the list they already know, so they were never listed (or welcomed)."""
    digest = {"welcome_mode": "digest"}
    [fan] = world.x.add_followers(1, prefix="churn")
    world.x.remove_follower(fan["id"])  # follows and leaves before the baseline
    old_unfollow = unfollow(world, fan["id"])  # X holds this event back
    world.run(**digest)  # the baseline: they do not follow
    world.x.add_follower(fan["id"])  # they follow again, after the baseline
    handle(world, follow(world, fan["id"]), **digest)  # recorded: pending in the digest queue
    world.run(**digest)  # a scan: the list's head now starts with them
    handle(world, old_unfollow, **digest)  # the old unfollow, late
    for _ in range(3):
        world.run(**digest)
    world.run_digest()
    assert fan["id"] in world.x.follower_ids()
    listed = "\n".join(world.digests)
    assert f"https://x.com/{fan['username']}" in listed, f"state {state(world, fan['id'])}"


def test_a_late_unfollow_from_before_they_followed_again_does_not_cost_a_follower_their_welcome(after_baseline):
    """The same in dm mode: their welcome waits (X's DM window spent) when the old unfollow arrives."""
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="churn")
    world.x.remove_follower(fan["id"])
    old_unfollow = unfollow(world, fan["id"])  # X holds this event back
    world.run()  # a scan: they do not follow
    world.x.add_follower(fan["id"])  # they follow again
    world.x.exhaust_rate_limit("send_dm")  # their welcome must wait
    handle(world, follow(world, fan["id"]))
    world.run()  # a scan: the list's head now starts with them; still waiting
    assert state(world, fan["id"]) == "pending"
    handle(world, old_unfollow)  # the old unfollow, late
    world.x.advance(24 * 3600)  # every DM window reset
    for _ in range(3):
        world.run()
    assert fan["id"] in world.x.follower_ids()
    assert world.dms_per_follower() == {fan["id"]: 1}, f"state {state(world, fan['id'])}"


def test_a_follow_and_unfollow_in_one_batch_send_nothing(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.x.remove_follower(fan["id"])
    result = handle(world, follow(world, fan["id"]), unfollow(world, fan["id"]))
    assert result.departed == 1 and result.welcomed == 0
    assert world.dms_per_follower() == {} and state(world, fan["id"]) == "departed"


def test_the_accounts_own_follow_is_ignored(after_baseline):
    world = after_baseline
    other_id = world.x.add_user(username="someone")["id"]
    result = handle(world, event_body(world, "follow.follow", world.x.account_id, other_id))
    assert result.outcomes == {event_worker.OWN_FOLLOW: 1}
    assert world.dms_per_follower() == {} and state(world, other_id) is None


def test_a_malformed_record_fails_alone(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    unknown = {**follow(world, fan["id"]), "event_type": "spaces.start"}
    no_source = follow(world, fan["id"])
    del no_source["payload"]["source"]
    result = handle(world, "not json", follow(world, fan["id"]), unknown, no_source, {"event_uuid": "1"})
    assert sorted(f["itemIdentifier"] for f in result.batch_item_failures) == ["m-0", "m-2", "m-3", "m-4"]
    assert world.dms_per_follower() == {fan["id"]: 1}


def test_oauth_revoke_fails_the_batch_for_a_person(after_baseline):
    world = after_baseline
    body = {"event_uuid": "-42", "filter": {"user_id": world.x.account_id}, "event_type": "oauth.revoke", "payload": {}}
    with pytest.raises(CredentialsRejected):
        handle(world, body)
    handle(world, body)  # delivered again: handled already, the batch goes through


def test_a_hundred_follow_events_never_exceed_xs_dm_limits(after_baseline):
    world = after_baseline
    fans = world.x.add_followers(100, prefix="burst")
    bodies = [follow(world, f["id"]) for f in fans]
    result = handle(world, *bodies, max_welcomes_per_run=100)
    sent = world.dms_per_follower()
    assert 0 < len(sent) <= DM_SENDS_PER_15_MIN and set(sent.values()) == {1}
    assert result.rate_limited and result.welcomed == len(sent)
    handle(world, *bodies, max_welcomes_per_run=100)  # X delivers them all again
    assert world.dms_per_follower() == sent
    for _ in range(12):  # the scheduled runs welcome the rest, 15 minutes apart
        world.run()
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}
    assert not [r for r in world.x.requests if r["status"] == 429], "X's DM limit was known from its headers, never hit"


def test_a_burst_beyond_xs_dm_window_asks_once_to_be_woken_at_its_reset_and_is_welcomed_then(after_baseline):
    """With webhook delivery nothing else may invoke the function for an hour (the safety net)."""
    world = after_baseline
    fans = world.x.add_followers(20, prefix="burst")
    wake_ups: list[tuple[str, float]] = []
    for part in (fans[:10], fans[10:]):  # two batches in one DM window
        handle(world, *[follow(world, f["id"]) for f in part], wake_up=lambda *args: wake_ups.append(args))
    assert len(world.dms_per_follower()) == DM_SENDS_PER_15_MIN
    [(account, reset_at)] = wake_ups  # once for the window
    assert account == world.x.account_id and reset_at > world.x.now()
    world.x.advance(reset_at + 1 - world.x.now())  # SQS holds the wake-up until the reset
    handle(world, wake_up_event(account, reset_at), wake_up=lambda *args: wake_ups.append(args))
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}
    assert len(wake_ups) == 1, "nobody waits: no further wake-up"
    handle(world, wake_up_event(account, reset_at))  # the same wake-up delivered again: nothing more
    assert world.dms_per_follower() == {f["id"]: 1 for f in fans}
    assert not [r for r in world.x.requests if r["status"] == 429]


def test_the_deployed_handler_queues_its_wake_up_on_the_batchs_own_queue_delayed(stack):
    stack.run()  # the baseline
    queue = stack.aws.create_webhook_queues()
    sqs = stack.aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    fans = stack.x.add_followers(20, prefix="burst")
    records = [dict(sqs_record(i, follow(stack, f["id"])), eventSourceARN=arn) for i, f in enumerate(fans)]
    for start in (0, 10):
        assert stack.function.invoke({"Records": records[start : start + 10]}) == {"batchItemFailures": []}
    assert len(stack.x.dm_log) == DM_SENDS_PER_15_MIN
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesDelayed"]) == ("0", "1")


def test_the_deployed_handler_takes_an_sqs_batch_and_welcomes_once(stack):
    """The same function as the schedule (concurrency 1: events and runs never overlap) takes
    SQS batches of webhook events and answers with partial batch failures."""
    stack.run()  # the baseline
    [fan] = stack.x.add_followers(1, prefix="new")
    body = {
        "event_uuid": "-7953119945885597316",
        "filter": {"user_id": stack.x.account_id},
        "event_type": "follow.follow",
        "tag": "courtesy",
        "payload": {"source": {"data": stack.x.user(fan["id"])}, "target": {"data": stack.x.user(stack.x.account_id)}},
        "includes": {},
    }
    batch = {"Records": [sqs_record(0, body), sqs_record(1, "not json")]}
    answer = stack.function.invoke(batch)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert stack.function.invoke(batch) == answer  # delivered again: nothing more is sent
    assert [dm["recipient_id"] for dm in stack.x.dm_log] == [fan["id"]]


# --- dm.received (reply mode) ------------------------------------------------------------

REPLY = {"welcome_mode": "reply"}


def confirmations_to(world, user_id: str) -> list[str]:
    return [dm["text"] for dm in world.x.dms_to(user_id) if dm["text"].startswith("Got it")]


@pytest.fixture
def reply_mode(world):
    """The baseline, then reply mode's first inbox read (it notes where the inbox stands)."""
    world.run(**REPLY)
    world.run(**REPLY)
    return world


def a_pending_follower(world) -> str:
    [fan] = world.x.add_followers(1, prefix="new")
    world.run(**REPLY)  # the scan records them: pending, owed nothing until they write
    assert world.states()[fan["id"]] == State.PENDING and world.x.dm_log == []
    return fan["id"]


def test_a_follower_who_writes_is_welcomed_from_the_event_alone_once(reply_mode):
    world = reply_mode
    fan = a_pending_follower(world)
    body = dm_received(world, world.x.receive_dm(fan, "Hi! Love your work"))
    result = handle(world, body, **REPLY)
    assert result.outcomes == {event_worker.HANDLED: 1} and result.replies_due == 1 and result.welcomed == 1
    assert world.dms_per_follower() == {fan: 1} and world.states()[fan] == State.WELCOMED
    for _ in range(3):  # the scheduled runs read the same message later: nothing more
        world.run(**REPLY)
    assert world.dms_per_follower() == {fan: 1}


def test_stop_from_a_welcomed_follower_is_recorded_and_confirmed_once(reply_mode):
    world = reply_mode
    fan = a_pending_follower(world)
    handle(world, dm_received(world, world.x.receive_dm(fan, "hello!")), **REPLY)
    stop = dm_received(world, world.x.receive_dm(fan, "Stop!!"))
    result = handle(world, stop, **REPLY)
    assert result.opted_out == 1 and result.confirmations_sent == 1 and result.welcomed == 0
    assert world.states()[fan] == State.OPTED_OUT
    again = handle(world, {**stop, "event_uuid": str(secrets.randbits(63))}, **REPLY)  # another delivery of it
    assert again.opted_out == 0 and again.confirmations_sent == 0
    for mode in ("reply", "reply", "dm"):
        world.run(welcome_mode=mode)
    assert len(confirmations_to(world, fan)) == 1 and len(world.x.dms_to(fan)) == 2


def test_a_message_in_dm_mode_changes_nothing(after_baseline):
    world = after_baseline
    [fan] = world.x.add_followers(1, prefix="new")
    world.run()  # welcomed (dm mode)
    stranger = world.x.add_user(username="stranger", name="Sam Stranger")["id"]
    before, sent = world.stack.ledger_items(), world.x.dm_log
    bodies = [dm_received(world, world.x.receive_dm(fan["id"], "STOP")), dm_received(world, world.x.receive_dm(stranger, "hello?"))]
    result = handle(world, *bodies, reply_to_non_followers="true")
    assert result.outcomes == {event_worker.NO_INBOX: 2} and not result.batch_item_failures
    after = world.stack.ledger_items()
    assert after.pop(RECENT_EVENTS_KEY)  # the operator's record of events seen; nobody's record changed
    assert after == before and world.x.dm_log == sent


def test_a_message_before_reply_modes_first_inbox_read_is_left_to_it(world):
    world.run(**REPLY)  # the baseline only: the inbox is not read yet
    [fan] = world.x.add_followers(1, prefix="new")
    body = dm_received(world, world.x.receive_dm(fan["id"], "hi"))
    result = handle(world, body, **REPLY)
    assert result.outcomes == {event_worker.INBOX_NOT_STARTED: 1} and world.x.dm_log == []


def test_a_malformed_dm_payload_fails_alone(reply_mode):
    world = reply_mode
    fan = a_pending_follower(world)
    good = dm_received(world, world.x.receive_dm(fan, "hi"))
    no_messages = {**good, "event_uuid": "-1", "payload": {"users": {}}}
    no_sender = json.loads(json.dumps({**good, "event_uuid": "-2"}))
    del no_sender["payload"]["direct_message_events"][0]["message_create"]["sender_id"]
    bad_time = json.loads(json.dumps({**good, "event_uuid": "-3"}))
    bad_time["payload"]["direct_message_events"][0]["created_timestamp"] = "yesterday"
    no_recipient = json.loads(json.dumps({**good, "event_uuid": "-4"}))
    del no_recipient["payload"]["direct_message_events"][0]["message_create"]["target"]
    result = handle(world, no_messages, good, no_sender, bad_time, no_recipient, **REPLY)
    assert sorted(f["itemIdentifier"] for f in result.batch_item_failures) == ["m-0", "m-2", "m-3", "m-4"]
    assert world.dms_per_follower() == {fan: 1}


def test_the_same_dm_event_twice_answers_once(reply_mode):
    world = reply_mode
    env = {**REPLY, "reply_to_non_followers": "true"}
    stranger = world.x.add_user(username="stranger", name="Sam Stranger")["id"]
    body = dm_received(world, world.x.receive_dm(stranger, "hello, do you sell gift cards?"))
    first = handle(world, body, body, **env)  # twice in one batch
    again = handle(world, body, **env)  # and delivered again later
    assert first.outcomes == {event_worker.HANDLED: 1, event_worker.DUPLICATE: 1} and first.welcomed == 1
    assert again.outcomes == {event_worker.DUPLICATE: 1} and again.welcomed == 0
    for _ in range(2):
        world.run(**env)
    assert world.dms_per_follower() == {stranger: 1}
    assert "Sam" in world.x.dms_to(stranger)[0]["text"]  # the name from the payload's users map


def test_a_dry_run_batch_sends_nothing_and_asks_x_about_nobody(after_baseline):
    """In a dry run the queue never drains, so welcoming it after every batch would ask X (billed per
    user) about the same queued followers again and again: the scheduled run previews them instead."""
    world = after_baseline
    world.x.add_followers(2, prefix="queued")
    world.run(dry_run="true")  # queued, previewed
    looked_up = world.x.lookup_users_returned
    [fan] = world.x.add_followers(1, prefix="new")
    result = handle(world, follow(world, fan["id"]), dry_run="true")
    assert result.new_followers == 1 and state(world, fan["id"]) == "pending"
    assert world.x.lookup_users_returned == looked_up and world.x.dm_log == []
