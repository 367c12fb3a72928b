"""The preview's read-through overlay: DynamoDB's answers, with writes kept in memory."""

from __future__ import annotations

import pytest

from courtesy.ledger import Ledger, State
from courtesy.x_account import Follower
from courtesy_cli.expressions import UnsupportedExpression, apply_update, condition_holds
from courtesy_cli.overlay import ReadThroughDynamoDB

TABLE = "courtesy-ledger"


def test_expressions_follow_dynamodb_semantics():
    item = {"state": {"S": "pending"}, "n": {"N": "3"}, "tags": {"SS": ["a"]}}
    values = {":p": {"S": "pending"}, ":w": {"S": "welcomed"}, ":two": {"N": "2"}, ":x": {"S": "pen"}}
    assert condition_holds("#s = :p AND n > :two", item, {"#s": "state"}, values)
    assert condition_holds("#s IN (:w, :p) AND begins_with(#s, :x) AND NOT attribute_exists(missing)", item, {"#s": "state"}, values)
    assert not condition_holds("attribute_not_exists(n) OR (#s = :w)", item, {"#s": "state"}, values)
    updated = apply_update(
        "SET n = n + :two, fresh = if_not_exists(fresh, :p) REMOVE #s ADD tags :set",
        item,
        {"#s": "state"},
        {**values, ":set": {"SS": ["b"]}},
    )
    assert updated == {"n": {"N": "5"}, "fresh": {"S": "pending"}, "tags": {"SS": ["a", "b"]}}
    assert item["state"] == {"S": "pending"}  # the original is untouched
    with pytest.raises(UnsupportedExpression):
        condition_holds("a.b = :p", item, None, values)


def test_writes_stay_in_memory_and_reads_see_them(world):
    client = world.aws.client("dynamodb")
    real = Ledger(client, TABLE)
    real.queue_new(Follower("11", "eleven", "Eleven"), queued_at="2026-01-01#1", now="t")
    overlay = ReadThroughDynamoDB(client)
    ledger = Ledger(overlay, TABLE)

    assert not ledger.queue_new(Follower("11", "eleven", "Eleven"), queued_at="x", now="t")  # already in the table
    assert ledger.queue_new(Follower("12", "twelve", "Twelve"), queued_at="2026-01-01#0", now="t")
    assert ledger.claim("11", run_id="r", template_id="t", now="t")
    assert not ledger.claim("11", run_id="r", template_id="t", now="t")  # now sending, in memory
    assert [e.follower_id for e in ledger.queued(State.PENDING)] == ["12"]
    assert ledger.count_queued(State.SENDING) == 1
    assert set(ledger.known(["11", "12", "13"])) == {"11", "12"}
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        overlay.delete_item(TableName=TABLE, Key={"follower_id": {"S": "12"}}, ConditionExpression="attribute_not_exists(follower_id)")

    # The table itself never changed.
    assert Ledger(client, TABLE).queued(State.PENDING)[0].follower_id == "11"
    assert set(world.items()) == {"11"}
    assert [(b and b["state"]["S"], a["state"]["S"]) for b, a in overlay.changes(TABLE)] == [(None, "pending"), ("pending", "sending")]


def test_query_pages_with_limit(world):
    client = world.aws.client("dynamodb")
    for i in range(3):
        Ledger(client, TABLE).queue_new(Follower(str(20 + i), "u", "U"), queued_at=f"2026#{i}", now="t")
    ledger = Ledger(ReadThroughDynamoDB(client), TABLE)
    ledger.queue_new(Follower("30", "u", "U"), queued_at="2026#1a", now="t")
    assert [e.follower_id for e in ledger.queued(State.PENDING, limit=3)] == ["20", "21", "30"]
    assert [e.follower_id for e in ledger.queued(State.PENDING)] == ["20", "21", "30", "22"]
