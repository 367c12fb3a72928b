"""The operator commands on the ledger of the welcome modes (issue 6): opt-outs, replies owed,
digests; the items are written as the function writes them."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from tests.cli.conftest import OUTPUTS, stack_template
from tests.cli.test_status import rows

FUNCTION = "courtesy-welcome"


def deploy_function(world, **variables: str) -> None:
    """A function with this environment, and a stack whose outputs name it (moto never runs it)."""
    role = world.aws.client("iam").create_role(RoleName="courtesy-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    world.aws.client("lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": variables},
    )
    world.aws.client("cloudformation").create_stack(
        StackName="with-function", TemplateBody=stack_template({**OUTPUTS, "FunctionName": FUNCTION})
    )


def opted_out(world, follower_id: str, at: str, **attributes: str) -> None:
    defaults = {"username": f"user{follower_id}", "name": "Someone", "state_before_opt_out": "welcomed", "confirmation": "sent"}
    world.put(follower_id, state="opted_out", opted_out_at=at, opt_out_word="stop", **{**defaults, **attributes})


def seed_modes(world) -> None:
    opted_out(world, "501", "2026-11-26T03:00:00.000000Z", confirmation="due", queue="opt-out-confirm",
              queued_at="2026-11-26T03:00:00.000000Z")  # fmt: skip
    # Someone who wrote "stop" without following: unknown to the ledger before, no names.
    opted_out(world, "502", "2026-11-26T04:00:00.000000Z", username="", name="", state_before_opt_out="", confirmation="dry-run")
    world.put("503", state="pending", username="asker", name="Asker", asked_at="2026-11-26T02:00:00.000000Z",
              queue="reply-due", queued_at="2026-11-26T02:00:00.000000Z", first_seen_at="2026-11-26T01:00:00.000000Z")  # fmt: skip
    world.put("504", state="pending", username="stranger", via="message", asked_at="2026-11-26T02:10:00.000000Z",
              queue="reply-due", queued_at="2026-11-26T02:10:00.000000Z")  # fmt: skip
    world.put("505", state="pending", username="waiting", queue="digest", queued_at="2026-11-26T01:00:00.000000Z")
    world.put("506", state="listed", username="listedfan", name="Listed Fan", digest_id="digest-1",
              listed_at="2026-11-26T05:00:00.000000Z")  # fmt: skip
    world.put("507", state="listing", username="inflight", run_id="digest-2", listing_at="2026-11-26T06:00:00.000000Z",
              queue="digest-listing", queued_at="2026-11-26T06:00:00.000000Z")  # fmt: skip


def test_status_shows_the_welcome_mode_the_new_states_and_the_opt_outs(world):
    seed_modes(world)
    deploy_function(world, WELCOME_MODE="reply", DRY_RUN="false")

    code, out, err = world.cli("--stack", "with-function", "status")

    assert code == 0, err
    assert "Welcome mode: reply   Dry run: off   (function courtesy-welcome)" in out
    table = {r[0]: r[1] for r in rows(out) if len(r) == 2}
    assert (table["opted_out"], table["pending"], table["listed"], table["listing"]) == ("2", "3", "1", "1")
    assert "Owed a reply (wrote to the account): 2" in out and "Waiting for the next digest: 1" in out
    assert "Opt-out confirmations due: 1" in out
    assert "1 in a digest being published: if that stays, the digest was interrupted" in out
    assert "Opted out (never messaged again): 2" in out
    opt_outs = [r for r in rows(out) if len(r) == 4 and r[0] in ("501", "502")]
    assert opt_outs == [["502", "", "2026-11-26T04:00:00.000000Z", "dry-run"], ["501", "@user501", "2026-11-26T03:00:00.000000Z", "due"]]

    code, out, err = world.cli("--stack", "with-function", "status", "--json")
    report = json.loads(out)
    assert (report["welcome_mode"], report["dry_run"]) == ("reply", False)
    assert report["queues"] == {"digest": 1, "digest-listing": 1, "opt-out-confirm": 1, "reply-due": 2}
    assert [o["follower_id"] for o in report["opted_out"]] == ["502", "501"]
    assert report["opted_out"][1]["confirmation"] == "due"


def test_status_welcome_mode_defaults_and_unknown(world):
    deploy_function(world)  # nothing set: the function's defaults
    code, out, err = world.cli("--stack", "with-function", "status")
    assert code == 0, err
    assert "Welcome mode: dm   Dry run: on: nothing is sent" in out

    code, out, err = world.cli("status")  # the test stack has no FunctionName output
    assert code == 0, err
    assert "Welcome mode: unknown (the stack has no FunctionName output: pass --function NAME)" in out
    code, out, err = world.cli("--ledger-table", OUTPUTS["LedgerTableName"], "--idempotency-table", OUTPUTS["IdempotencyTableName"],
                               "--function", "no-such-function", "status")  # fmt: skip
    assert code == 0, err
    assert "Welcome mode: unknown (Not found while reading function 'no-such-function'" in out
    assert "Opted out" not in out  # nobody has opted out


def test_status_lists_the_newest_opt_outs_and_points_to_export(world):
    for i in range(60):
        opted_out(world, str(600 + i), f"2026-11-26T03:{i:02d}:00.000000Z")
    code, out, err = world.cli("status")
    assert code == 0, err
    assert "Opted out (never messaged again): newest 50 of 60" in out
    assert "All of them: courtesy export --state opted_out" in out
    shown = [r[0] for r in rows(out) if len(r) == 4 and r[0].isdigit()]
    assert shown == [str(600 + i) for i in range(59, 9, -1)]  # newest first


def test_export_of_the_new_states_has_their_columns(world):
    seed_modes(world)
    code, out, err = world.cli("export", "--state", "opted_out", "--state", "listed", "--state", "listing")
    assert code == 0, err
    exported = {r["follower_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert set(exported) == {"501", "502", "506", "507"}
    due = exported["501"]
    assert (due["state"], due["time"], due["opted_out_at"], due["opt_out_word"], due["confirmation"], due["state_before_opt_out"]) == (
        "opted_out",
        "2026-11-26T03:00:00.000000Z",
        "2026-11-26T03:00:00.000000Z",
        "stop",
        "due",
        "welcomed",
    )
    assert (exported["502"]["username"], exported["502"]["state_before_opt_out"]) == ("", "")
    listed = exported["506"]
    assert (listed["digest_id"], listed["listed_at"], listed["time"]) == ("digest-1", "2026-11-26T05:00:00.000000Z", listed["listed_at"])
    assert exported["507"]["time"] == "2026-11-26T06:00:00.000000Z"

    code, out, err = world.cli("export")  # every exported state by default, the new ones included
    header = next(csv.reader(io.StringIO(out)))
    for column in ("opted_out_at", "opt_out_word", "confirmation", "asked_at", "digest_id", "listed_at"):
        assert column in header
    assert {r["state"] for r in csv.DictReader(io.StringIO(out))} == {"opted_out", "listed", "listing"}


def test_block_leaves_opted_out_and_listed_people_alone(world):
    seed_modes(world)
    for target, words in (("501", "opted out and is never messaged again"), ("@listedfan", "listed in a digest"), ("507", "digest")):
        before = world.items()
        code, out, err = world.cli("block", target)
        assert code == 1 and words in err, err
        assert world.items() == before


def test_block_and_unblock_give_a_follower_back_the_queue_of_their_mode(world):
    seed_modes(world)
    world.put("508", state="pending", username="quiet", queued_at="2026-11-26T01:30:00.000000Z")  # reply mode: no queue until they write

    for follower_id, queue in (("503", "reply-due"), ("505", "digest"), ("508", None)):
        code, out, err = world.cli("block", follower_id)
        assert code == 0 and "now skipped (blocklisted)" in out, err
        assert "queue" not in world.item(follower_id) and follower_id not in world.queued(queue or "pending")
        code, out, err = world.cli("unblock", follower_id)
        assert code == 0 and "pending again" in out, err
        item = world.item(follower_id)
        assert item["state"] == "pending" and item.get("queue") == queue and "blocked_queue" not in item
        if queue:
            assert follower_id in world.queued(queue)
    assert world.item("503")["asked_at"] == "2026-11-26T02:00:00.000000Z"  # still owed their reply


def test_unblock_of_a_block_recorded_before_queues_were_kept_goes_back_to_pending(world):
    world.put("509", state="skipped", reason="blocklisted", blocked_from="pending", username="old", queued_at="2026-11-26T01:00:00.000000Z")
    code, out, err = world.cli("unblock", "509")
    assert code == 0, err
    assert world.item("509")["queue"] == "pending" and "509" in world.queued()
