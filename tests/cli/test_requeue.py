"""`courtesy requeue`: followers X refused (undeliverable) or whose message it rejected (failed)
go back in the queue once a person has fixed the cause; shown first, confirmed, conditional."""

from __future__ import annotations

import io

import pytest

from tests.cli.test_status import rows
from tests.cli.test_welcome_modes import deploy_function

FORBIDDEN = {"title": "Forbidden", "detail": "You cannot send messages to this user", "type": "about:blank", "status": 403}


@pytest.fixture
def refused(world):
    """Baseline, then 3 followers: X refuses the first recipient (403), rejects the second's message (400),
    takes the third."""
    world.run()
    fans = world.x.add_followers(3)
    world.x.fail_next("send_dm", 403, body=FORBIDDEN)
    world.x.fail_next("send_dm", 400)
    world.run()
    states = {f["id"]: world.item(f["id"])["state"] for f in fans}
    assert sorted(states.values()) == ["failed", "undeliverable", "welcomed"], states
    world.fans = fans
    world.undeliverable = next(f for f in fans if states[f["id"]] == "undeliverable")
    world.failed = next(f for f in fans if states[f["id"]] == "failed")
    world.welcomed = next(f for f in fans if states[f["id"]] == "welcomed")
    return world


def answer(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_requeue_shows_who_first_and_answering_no_writes_nothing(refused, monkeypatch):
    world = refused
    before = world.items()
    answer(monkeypatch, "n\n")

    code, out, err = world.cli("requeue", "--mode", "dm")

    assert code == 1 and "Nothing changed." in out
    assert "Requeue 2 followers? [y/N]" in err
    shown = {r[0]: r for r in rows(out) if len(r) == 6}
    assert set(shown) == {world.undeliverable["id"], world.failed["id"]}
    refused_row = shown[world.undeliverable["id"]]
    item = before[world.undeliverable["id"]]
    assert refused_row[1:5] == ["@" + world.undeliverable["username"], "undeliverable", item["detail"], item["closed_at"]]
    assert "You cannot send messages to this user" in item["detail"]
    assert shown[world.failed["id"]][2] == "failed" and shown[world.failed["id"]][5] == "pending"
    assert world.items() == before, "answering no wrote to the ledger"

    answer(monkeypatch, "")  # no answer at all (end of input) is no as well
    code, out, err = world.cli("requeue", "--mode", "dm")
    assert code == 1 and world.items() == before


def test_requeued_followers_are_welcomed_by_the_function_exactly_once(refused, monkeypatch):
    world = refused
    answer(monkeypatch, "y\n")

    code, out, err = world.cli("requeue", "--mode", "dm")

    assert code == 0, err
    assert "Requeued 2 of 2" in out
    for fan in (world.undeliverable, world.failed):
        item = world.item(fan["id"])
        assert (item["state"], item["queue"]) == ("pending", "pending")
        assert item["reopened_from"] in ("undeliverable", "failed") and item["reopened_at"]
        assert fan["id"] in out
    summary = world.run()
    assert summary["welcomed"] == 2
    world.run()
    assert world.stack.welcomes_per_follower() == {f["id"]: 1 for f in world.fans}, "from the sandbox's DM log"
    assert {world.item(f["id"])["state"] for f in world.fans} == {"welcomed"}


def test_requeue_narrows_by_state_and_by_follower(refused):
    world = refused
    code, out, err = world.cli("requeue", "--mode", "dm", "--state", "failed", "--yes")
    assert code == 0, err
    assert world.item(world.failed["id"])["state"] == "pending"
    assert world.item(world.undeliverable["id"])["state"] == "undeliverable"

    before = world.items()
    code, out, err = world.cli("requeue", "--mode", "dm", "--yes", world.welcomed["id"])
    assert code == 1 and f"not requeued: {world.welcomed['id']}" in err and "is welcomed" in err
    assert world.items() == before

    code, out, err = world.cli("requeue", "--mode", "dm", "--yes", "@" + world.undeliverable["username"].upper())
    assert code == 0, err
    assert world.item(world.undeliverable["id"])["state"] == "pending"

    code, out, err = world.cli("requeue", "--mode", "dm", "--yes")
    assert code == 0 and "No followers to requeue" in out


def test_a_follower_that_changes_meanwhile_is_reported_and_not_overwritten(refused, monkeypatch):
    world = refused
    target = world.undeliverable["id"]

    class OptOutWhileAsking(io.StringIO):
        def readline(self, *args):  # the person answers; meanwhile the follower opts out
            world.dynamodb.update_item(
                TableName="courtesy-ledger",
                Key={"follower_id": {"S": target}},
                UpdateExpression="SET #s = :o",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":o": {"S": "opted_out"}},
            )
            return "y\n"

    monkeypatch.setattr("sys.stdin", OptOutWhileAsking())

    code, out, err = world.cli("requeue", "--mode", "dm")

    assert code == 1
    assert f"{target} (@{world.undeliverable['username']}) is opted_out now; left as it is" in out
    assert "Requeued 1 of 2; 1 changed meanwhile" in out
    assert world.item(target)["state"] == "opted_out" and "queue" not in world.item(target)
    assert world.item(world.failed["id"])["state"] == "pending"


def test_requeue_uses_the_queue_of_the_welcome_mode(world):
    closed = "2026-11-26T03:00:00.000000Z"
    world.put("701", state="undeliverable", username="wrote", asked_at="2026-11-26T02:00:00.000000Z",
              queued_at="2026-11-26T02:00:00.000000Z#999999", closed_at=closed, detail="403: Forbidden")  # fmt: skip
    world.put("702", state="failed", username="quiet", queued_at="2026-11-26T01:00:00.000000Z#999999", closed_at=closed)
    world.put("703", state="undeliverable", username="stranger", via="message", asked_at=closed, closed_at=closed)

    code, out, err = world.cli("requeue", "--mode", "reply", "--yes")

    assert code == 0, err
    assert world.item("701")["queue"] == "reply-due" and "701" in world.queued("reply-due")  # wrote: owed their reply
    assert "queue" not in world.item("702") and world.item("702")["state"] == "pending"  # waits until they write
    assert world.item("703")["queue"] == "reply-due"
    assert world.item("701")["queued_at"] == "2026-11-26T02:00:00.000000Z#999999", "back at their place in the queue"

    world.put("704", state="failed", username="listme", closed_at=closed)  # no queued_at: gets one
    deploy_function(world, WELCOME_MODE="digest")  # the mode comes from the deployed function
    code, out, err = world.cli("--stack", "with-function", "requeue", "--yes", "704")
    assert code == 0, err
    item = world.item("704")
    assert (item["state"], item["queue"]) == ("pending", "digest") and item["queued_at"]
    assert "704" in world.queued("digest")


def test_requeue_needs_to_know_the_welcome_mode(refused):
    code, out, err = refused.cli("requeue", "--yes")  # the test stack has no FunctionName output
    assert code == 2 and "--mode" in err
    assert refused.item(refused.undeliverable["id"])["state"] == "undeliverable"
