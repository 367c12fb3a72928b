"""The preview's read-through overlay: a MemoryStore over the table's DynamoStore. Reads see
the table with the in-memory writes laid over it; every transition is checked against what
the overlay sees; the table is never written."""

from __future__ import annotations

from courtesy.domain import Follower
from courtesy.ledger import Ledger
from courtesy.ledger_store import DynamoStore, MemoryStore
from courtesy.lifecycle import NEW, Queue, State

TABLE = "courtesy-ledger"


def queue_new(ledger: Ledger, follower_id: str, queued_at: str, queue: str = Queue.PENDING) -> bool:
    follower = Follower(follower_id, f"user{follower_id}", f"User {follower_id}")
    return ledger.record("record_new", follower, {"first_seen_at": "t", "queued_at": queued_at}, queue=queue)


def overlay_of(world) -> tuple[MemoryStore, Ledger]:
    overlay = MemoryStore(under=DynamoStore(world.aws.client("dynamodb"), TABLE))
    return overlay, Ledger(store=overlay)


def test_writes_stay_in_memory_and_reads_see_them(world):
    table = Ledger(world.aws.client("dynamodb"), TABLE)
    assert queue_new(table, "11", "2026-01-01#1")
    in_table = world.items()
    overlay, ledger = overlay_of(world)

    assert not queue_new(ledger, "11", "x")  # already in the table: a NEW record is refused
    assert queue_new(ledger, "12", "2026-01-01#0")
    assert ledger.move("claim", "11", fields={"run_id": "r", "template_id": "t", "claimed_at": "t"})
    assert not ledger.move("claim", "11", fields={"run_id": "r", "template_id": "t", "claimed_at": "t"})  # sending, in memory

    assert [e.follower_id for e in ledger.queued(Queue.PENDING)] == ["12"]
    assert ledger.count_queued(Queue.SENDING) == 1
    assert {k: v.state for k, v in ledger.known(["11", "12", "13"]).items()} == {"11": State.SENDING, "12": State.PENDING}
    assert ledger.get("11")["run_id"] == "r" and ledger.get("13") is None

    # The table itself never changed, and was never asked to write.
    assert world.items() == in_table
    assert table.queued(Queue.PENDING)[0].follower_id == "11"
    assert overlay.under.writes == 0 and overlay.writes == 4

    changes = overlay.changes()
    assert [(b and b["state"], a and a["state"]) for b, a in changes] == [(None, State.PENDING), (State.PENDING, State.SENDING)]
    before, after = changes[1]
    assert before == table.get("11")  # the table's item, as it was
    assert (after["queue"], after["run_id"], after["username"]) == (Queue.SENDING, "r", "user11")


def test_conditional_transitions_are_checked_against_what_the_overlay_sees(world):
    table = Ledger(world.aws.client("dynamodb"), TABLE)
    assert queue_new(table, "21", "2026-01-01#1")
    blocked = {"reason": "blocklisted", "blocked_from": "unknown", "blocked_at": "t", "skipped_at": "t"}
    assert table.move("block", "22", expected=NEW, given=None, fields=blocked)
    in_table = world.items()
    overlay, ledger = overlay_of(world)

    # Only the run that claimed a follower may settle them.
    assert ledger.move("claim", "21", fields={"run_id": "mine", "template_id": "t", "claimed_at": "t"})
    assert not ledger.move("mark_welcomed", "21", run_id="other", fields={"welcomed_at": "t", "dm_event_id": "d"})
    assert ledger.move("mark_welcomed", "21", run_id="mine", fields={"welcomed_at": "t", "dm_event_id": "d"})
    assert ledger.get("21")["state"] == State.WELCOMED and "queue" not in ledger.get("21")
    assert ledger.count_queued(Queue.SENDING) == 0

    # A condition on a given value: the queue the follower is in, as the overlay sees it.
    assert queue_new(ledger, "23", "2026-01-01#2")
    assert not ledger.move("move_queue", "23", given=Queue.DIGEST, queue=Queue.REPLY_DUE)
    assert ledger.move("move_queue", "23", given=Queue.PENDING, queue=Queue.DIGEST)
    assert [e.follower_id for e in ledger.queued(Queue.DIGEST)] == ["23"]

    # A removal hides the table's item from every read; a second one finds nothing to remove.
    assert ledger.move("forget_blocked", "22")
    assert not ledger.move("forget_blocked", "22")
    assert ledger.get("22") is None and ledger.known(["21", "22"]).keys() == {"21"}

    assert world.items() == in_table and overlay.under.writes == 0
    assert [(b and b["state"], a and a["state"]) for b, a in overlay.changes()] == [
        (State.PENDING, State.WELCOMED),
        (None, State.PENDING),
        (State.SKIPPED, None),
    ]


def test_a_record_made_and_removed_in_memory_is_no_change(world):
    overlay, ledger = overlay_of(world)
    blocked = {"reason": "blocklisted", "blocked_from": "unknown", "blocked_at": "t", "skipped_at": "t"}
    assert ledger.move("block", "31", expected=NEW, given=None, fields=blocked)
    assert ledger.get("31")["state"] == State.SKIPPED
    assert ledger.move("forget_blocked", "31")
    assert ledger.get("31") is None
    assert overlay.changes() == [] and world.items() == {}


def test_queue_reads_merge_the_table_and_memory_oldest_first(world):
    table = Ledger(world.aws.client("dynamodb"), TABLE)
    for i in range(3):
        assert queue_new(table, str(40 + i), f"2026#{i}")
    overlay, ledger = overlay_of(world)
    assert queue_new(ledger, "50", "2026#1a")
    assert ledger.move("mark_departed", "40", fields={"departed_at": "t"})  # out of the queue, in memory only

    assert [e.follower_id for e in ledger.queued(Queue.PENDING, limit=2)] == ["41", "50"]
    assert [e.follower_id for e in ledger.queued(Queue.PENDING)] == ["41", "50", "42"]
    assert ledger.count_queued(Queue.PENDING) == 3
    assert [e.follower_id for e in table.queued(Queue.PENDING)] == ["40", "41", "42"]  # the table: as it was
