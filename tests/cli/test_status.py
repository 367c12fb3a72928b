"""`courtesy status` and resource discovery."""

from __future__ import annotations

import json
import re

import pytest

from courtesy_cli.main import main
from tests.cli.conftest import OUTPUTS, stack_template


def rows(out: str) -> list[list[str]]:
    """The cells of a rich table's rows (lines drawn with │)."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in out.splitlines() if line.count("│") >= 2]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("status", "preview", "export", "block", "unblock", "thanked", "requeue"):
        assert command in out


def test_status_reads_the_stack_outputs_and_reports_the_ledger_and_runs(world):
    world.run()  # the baseline: 30 followers
    fans = world.x.add_followers(5)
    summary = world.run(MAX_WELCOMES_PER_RUN="2")
    assert summary["welcomed"] == 2 and summary["pending"] == 3
    world.put("777", state="skipped", reason="no_posts", username="spammy", name="Spam")
    world.put("778", state="skipped", reason="blocklisted", username="nope", name="Nope")
    pending = [f for f in fans if world.item(f["id"])["state"] == "pending"]
    world.dynamodb.update_item(
        TableName=OUTPUTS["LedgerTableName"],
        Key={"follower_id": {"S": pending[0]["id"]}},
        UpdateExpression="SET notable = :t, #n = :n",
        ExpressionAttributeNames={"#n": "name"},
        ExpressionAttributeValues={":t": {"S": "true"}, ":n": {"S": "[bold red]Big[/] Star"}},
    )

    code, out, err = world.cli("status")  # --stack defaults to "courtesy"

    assert code == 0, err
    table = {r[0]: r[1] for r in rows(out) if len(r) == 2}
    assert table["baseline"] == "30" and table["welcomed"] == "2" and table["pending"] == "3" and table["skipped"] == "2"
    assert table["no_posts"] == "1" and table["blocklisted"] == "1"
    assert "Backlog (pending): 3" in out and "Welcomes today" in out
    runs = [r for r in rows(out) if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+Z", r[0])]
    assert [r[0] for r in runs] == ["2026-11-26T02:45:00Z", "2026-11-26T02:30:00Z"]  # newest first
    assert runs[0][2:4] == ["5", "2"] and runs[0][6] == "3"  # new, welcomed; pending
    assert runs[1][-1] == "yes"  # the baseline run
    username = pending[0]["username"]
    assert f"https://x.com/{username}" in out
    assert "[bold red]Big[/] Star" in out  # a display name is shown as written, never as markup

    code, out, _ = world.cli("status", "--json")
    report = json.loads(out)
    assert report["states"] == {"baseline": 30, "pending": 3, "skipped": 2, "welcomed": 2}
    assert report["backlog"] == 3 and report["welcomes_today"] == 2
    assert [n["follower_id"] for n in report["notable_unthanked"]] == [pending[0]["id"]]
    assert [r["slot"] for r in report["last_runs"]] == ["2026-11-26T02:45:00Z", "2026-11-26T02:30:00Z"]


def test_explicit_names_need_no_stack(world):
    world.run()
    code, out, err = world.cli(
        "--stack",
        "does-not-exist",
        "--ledger-table",
        OUTPUTS["LedgerTableName"],
        "--idempotency-table",
        OUTPUTS["IdempotencyTableName"],
        "status",
    )
    assert code == 0, err
    assert "baseline" in out


def test_clear_errors_for_a_missing_stack_or_output(world):
    code, out, err = world.cli("--stack", "nope", "status")
    assert code == 2 and "Stack 'nope' not found" in err and "--ledger-table" in err
    partial = {k: v for k, v in OUTPUTS.items() if k != "IdempotencyTableName"}
    world.aws.client("cloudformation").create_stack(StackName="partial", TemplateBody=stack_template(partial))
    code, out, err = world.cli("--stack", "partial", "status")
    assert code == 2 and "no output 'IdempotencyTableName'" in err and "--idempotency-table" in err


def test_clear_error_without_aws_credentials(world, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, out, err = world.cli("status")
    assert code == 2 and "No AWS credentials" in err
