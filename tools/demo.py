"""`make demo`: Courtesy end to end on this machine, with nothing real touched.

Starts the local X sandbox and a local DynamoDB (moto), then runs the real
handler on events/schedule.json-shaped events, slot after slot:
baseline -> new followers -> dry-run preview -> live run -> rerun.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from courtesy.observability import logger
from sandbox import XSandbox
from tools.local_aws import LocalAws
from tools.local_run import LocalFunction, event_for_slot

COLUMNS = (
    "baseline",
    "dry_run",
    "followers_read",
    "new_followers",
    "welcomed",
    "skipped",
    "failed",
    "pending",
    "uncertain",
    "rate_limited",
)
LOG_PATH = Path(tempfile.gettempdir()) / "courtesy-demo-logs.jsonl"
NEWCOMERS = [("ada_builds", "Ada Lovelace"), ("grace_h", "Grace Hopper"), ("kat_j", "Katherine Johnson")]


def _table(rows: list[tuple[str, dict]]) -> str:
    headers = ("run", *COLUMNS)
    cells = [headers] + [(label, *(str(summary[c]).lower() for c in COLUMNS)) for label, summary in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _say(text: str) -> None:
    print("\n" + textwrap.fill(text, width=100))


def main() -> None:
    with XSandbox() as x, LocalAws() as aws:
        x.add_followers(500, prefix="early")
        aws.create_stack_resources(x.credentials)
        function = LocalFunction(aws, x.base_url, clock=lambda: datetime.fromtimestamp(x.now(), UTC))
        slot = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        rows: list[tuple[str, dict]] = []

        log_file = open(LOG_PATH, "w")  # noqa: SIM115 - kept open for the whole demo
        logger.registered_handler.setStream(log_file)  # the function's JSON logs go to a file, not the screen

        def run(label: str, **env: str) -> dict:
            nonlocal slot
            slot += timedelta(minutes=15)
            x.advance(15 * 60)
            emf = io.StringIO()
            lines_before = LOG_PATH.read_text().count("\n")
            with contextlib.redirect_stdout(emf):  # CloudWatch EMF metric records are printed to stdout
                summary = function.invoke(event_for_slot(slot), **env)
            log_file.flush()
            rows.append((label, summary))
            metrics = [json.loads(line) for line in emf.getvalue().splitlines() if line.startswith("{")]
            log_lines = LOG_PATH.read_text().count("\n") - lines_before
            print(f"  ran slot {summary['slot']}: {log_lines} structured log lines, {len(metrics)} metrics records")
            return summary

        print(f"Local X sandbox at {x.base_url} (account id {x.account_id}, 500 followers)")
        print(f"Local DynamoDB and Secrets Manager (moto) at {aws.endpoint}; tables and secret made from template.yaml")

        _say(
            "1. First run, in the default dry run: Courtesy records a baseline from one small page of followers. "
            "Nobody who already followed is ever messaged."
        )
        run("1 baseline")

        _say(
            "2. Three people follow the account, and so does an account that has never posted (likely a throwaway). "
            "A dry run shows exactly who would get which message, and sends nothing; the throwaway is skipped, with its reason."
        )
        for username, name in NEWCOMERS:
            x.add_follower(username=username, name=name)
        x.add_follower(username="promo_4u", name="Promo", public_metrics={"followers_count": 2, "following_count": 900, "tweet_count": 0})
        preview = run("2 dry run")
        print(f"  skipped: {preview['skipped_by_reason']}")
        for item in preview["would_welcome"]:
            print(f"  would send to @{item['username']}: {item['text']}")

        _say("3. Going live (DryRun=false): each new follower gets one welcome, oldest follower first.")
        run("3 live", DRY_RUN="false")
        for dm in x.dm_log:
            print(f"  sandbox received DM to {dm['recipient_id']}: {dm['text']}")

        _say("4. The next runs find nothing new, and one of the newcomers unfollows and follows again: nobody is welcomed twice.")
        refollower = x.follower_ids()[0]
        x.remove_follower(refollower)
        x.add_follower(refollower)
        run("4 live again", DRY_RUN="false")
        run("5 live again", DRY_RUN="false")

        print("\nRun summaries:\n")
        print(_table(rows))
        per_recipient: dict[str, int] = {}
        for dm in x.dm_log:
            per_recipient[dm["recipient_id"]] = per_recipient.get(dm["recipient_id"], 0) + 1
        print(f"\nThe function's structured logs: {LOG_PATH}")
        print(
            f"The sandbox's own DM log: {len(x.dm_log)} DMs to {len(per_recipient)} people, at most "
            f"{max(per_recipient.values(), default=0)} each; {x.users_returned} follower records read from X in all."
        )


if __name__ == "__main__":
    main()
