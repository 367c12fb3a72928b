"""`courtesy export`, `block`, `unblock`, `thanked`: real outputs and the ledger states after."""

from __future__ import annotations

import csv
import io

import pytest


@pytest.fixture
def seeded(world):
    """Baseline, then 4 followers: 2 welcomed by the real handler, 2 pending."""
    world.run()
    fans = world.x.add_followers(4)
    world.run(MAX_WELCOMES_PER_RUN="2")
    world.put("900", state="skipped", reason="default_profile_image", username="egg", name="=HYPERLINK(\"http://evil\")",
              first_seen_at="2026-11-26T03:00:00.000000Z")  # fmt: skip
    world.put("901", state="departed", username="gone", name="Gone", first_seen_at="2026-11-26T02:00:00.000000Z")
    world.fans = fans
    return world


def by_state(world, state):
    return sorted(k for k, v in world.items().items() if v.get("state") == state)


def test_export_writes_a_csv_of_settled_followers(seeded, tmp_path):
    code, out, err = seeded.cli("export")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sorted(r["state"] for r in rows) == ["departed", "skipped", "welcomed", "welcomed"]
    welcomed = [r for r in rows if r["state"] == "welcomed"]
    assert all(r["template_id"] and r["welcomed_at"] and r["time"] == r["welcomed_at"] and r["dm_event_id"] for r in welcomed)
    skipped = next(r for r in rows if r["state"] == "skipped")
    assert skipped["reason"] == "default_profile_image" and skipped["time"] == "2026-11-26T03:00:00.000000Z"
    assert skipped["name"].startswith("'=HYPERLINK")  # never a live formula in a spreadsheet

    path = tmp_path / "welcomed.csv"
    code, out, err = seeded.cli("export", "--state", "welcomed", "-o", str(path))
    assert code == 0 and out == "" and "Wrote 2 followers" in err
    assert {r["follower_id"] for r in csv.DictReader(path.open())} == set(by_state(seeded, "welcomed"))


def test_block_and_unblock_a_pending_follower(seeded):
    pending = by_state(seeded, "pending")
    target = seeded.item(pending[0])
    code, out, err = seeded.cli("block", "@" + target["username"].upper())  # usernames are case-insensitive
    assert code == 0, err
    assert "now skipped (blocklisted)" in out
    item = seeded.item(pending[0])
    assert (item["state"], item["reason"], item["blocked_from"]) == ("skipped", "blocklisted", "pending")
    assert pending[0] not in seeded.queued()

    seeded.run()  # the real handler: the blocked follower is not welcomed, the other one is
    assert seeded.stack.welcomes_per_follower().get(pending[0]) is None
    assert seeded.item(pending[1])["state"] == "welcomed"

    code, out, err = seeded.cli("unblock", pending[0])
    assert code == 0 and "pending again" in out
    item = seeded.item(pending[0])
    assert item["state"] == "pending" and "reason" not in item and "blocked_from" not in item
    assert pending[0] in seeded.queued()
    seeded.run()
    assert seeded.stack.welcomes_per_follower()[pending[0]] == 1


def test_block_an_unknown_id_then_unblock_it(seeded):
    code, out, err = seeded.cli("block", "123456")
    assert code == 0 and "not in the ledger" in out
    item = seeded.item("123456")
    assert (item["state"], item["reason"], item["blocked_from"]) == ("skipped", "blocklisted", "unknown")
    code, out, err = seeded.cli("block", "123456")
    assert code == 0 and "already blocked" in out
    code, out, err = seeded.cli("unblock", "123456")
    assert code == 0 and "123456" not in seeded.items()


def test_block_refuses_followers_already_welcomed_or_unknown_usernames(seeded):
    welcomed = by_state(seeded, "welcomed")[0]
    before = seeded.item(welcomed)
    code, out, err = seeded.cli("block", welcomed)
    assert code == 1 and "already welcomed" in err
    assert seeded.item(welcomed) == before
    code, out, err = seeded.cli("block", "@nobody_here")
    assert code == 1 and "not known to the ledger yet" in err
    code, out, err = seeded.cli("unblock", welcomed)
    assert code == 1 and "is not blocked" in err
    seeded.put("902", state="skipped", reason="blocklisted", username="listed")  # by the function's blocklist parameter
    code, out, err = seeded.cli("unblock", "@listed")
    assert code == 1 and "function's own blocklist" in err and seeded.item("902")["state"] == "skipped"


def test_thanked_marks_a_notable_follower(seeded):
    pending = by_state(seeded, "pending")[0]
    seeded.dynamodb.update_item(
        TableName="courtesy-ledger",
        Key={"follower_id": {"S": pending}},
        UpdateExpression="SET notable = :t",
        ExpressionAttributeValues={":t": {"S": "true"}},
    )
    code, out, err = seeded.cli("status", "--json")
    assert pending in out
    code, out, err = seeded.cli("thanked", pending)
    assert code == 0 and "marked as thanked" in out
    assert seeded.item(pending)["thanked_at"]
    code, out, err = seeded.cli("status")
    assert "No notable followers waiting" in out
    code, out, err = seeded.cli("thanked", by_state(seeded, "welcomed")[0])
    assert code == 1 and "not a notable follower" in err


def test_unblock_puts_each_follower_back_where_the_block_took_them_from(seeded):
    code, out, err = seeded.cli("block", "901")  # departed: in no queue
    assert code == 0 and "was departed; now skipped" in out
    assert (seeded.item("901")["blocked_from"], seeded.item("901")["blocked_queue"]) == ("departed", "")
    code, out, err = seeded.cli("unblock", "@gone")
    assert code == 0 and "departed again" in out
    item = seeded.item("901")
    assert item["state"] == "departed" and not {"reason", "blocked_from", "blocked_at", "skipped_at", "blocked_queue", "queue"} & set(item)

    # A pending follower in no queue (reply mode, until they write) goes back to no queue.
    seeded.put("903", state="pending", username="quiet", queued_at="2026-11-26T01:00:00.000000Z#999999")
    code, out, err = seeded.cli("block", "903")
    assert code == 0 and seeded.item("903")["blocked_queue"] == ""
    code, out, err = seeded.cli("unblock", "903")
    assert code == 0 and seeded.item("903")["state"] == "pending" and "queue" not in seeded.item("903")

    # Blocked before blocked_queue was recorded: back into the pending queue, which needs a queued_at.
    seeded.put("904", state="skipped", reason="blocklisted", blocked_from="pending", username="old",
               queued_at="2026-11-26T00:00:00.000000Z#999999")  # fmt: skip
    code, out, err = seeded.cli("unblock", "904")
    assert code == 0 and (seeded.item("904")["state"], seeded.item("904")["queue"]) == ("pending", "pending")
    assert "904" in seeded.queued()
    seeded.put("905", state="skipped", reason="blocklisted", blocked_from="pending", username="noqueue")
    before = seeded.item("905")
    code, out, err = seeded.cli("unblock", "905")
    assert code == 1 and "has no queued_at to go back into the queue with" in err and seeded.item("905") == before
