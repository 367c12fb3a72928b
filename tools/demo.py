"""`make demo`: Courtesy end to end on this machine, with nothing real touched.

Starts the local X sandbox and a local DynamoDB (moto), then runs the real
handler on events/schedule.json-shaped events, slot after slot:
baseline -> new followers -> dry-run preview -> live run -> rerun, then the
two modes X's rules allow: reply (answer a follower's first message, honour
"stop") and digest (a daily list for a person, published to the SNS topic).
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
from tools.local_aws import LOCAL_NAMES, LocalAws
from tools.local_run import LocalFunction, event_for_slot, load_event

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
    log_file = open(LOG_PATH, "w")  # noqa: SIM115 - kept open for the whole demo
    previous = logger.registered_handler.setStream(log_file)  # the function's JSON logs go to a file, not the screen
    try:
        _demo(log_file)
    finally:
        logger.registered_handler.setStream(previous)
        log_file.close()


def _demo(log_file) -> None:  # type: ignore[no-untyped-def]
    with XSandbox() as x, LocalAws() as aws:
        x.add_followers(500, prefix="early")
        aws.create_stack_resources(x.credentials)
        function = LocalFunction(aws, x.base_url, clock=lambda: datetime.fromtimestamp(x.now(), UTC))
        slot = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        rows: list[tuple[str, dict]] = []

        def run(label: str, event: dict | None = None, **env: str) -> dict:
            nonlocal slot
            slot += timedelta(minutes=15)
            x.advance(15 * 60)
            emf = io.StringIO()
            lines_before = LOG_PATH.read_text().count("\n")
            with contextlib.redirect_stdout(emf):  # CloudWatch EMF metric records are printed to stdout
                summary = function.invoke(event or event_for_slot(slot), **env)
            log_file.flush()
            if event is None:
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

        _say(
            "5. X's developer guidelines do not allow unsolicited welcome DMs (see README, Welcome modes). "
            "WelcomeMode=reply sends none: a new follower is welcomed only once they write to the account, "
            'and a message like "STOP" means no message ever again (with one confirmation, for someone Courtesy '
            "has written to; anyone else opts out silently)."
        )
        reply = {"DRY_RUN": "false", "WELCOME_MODE": "reply"}
        run("6 reply starts", **reply)  # notes where the inbox stands: older messages are history
        writer = x.add_follower(username="linus_t", name="Linus Torvalds")
        quitter = x.add_follower(username="robin_q", name="Robin Quinn")
        run("7 reply", **reply)
        print(f"  two new followers, {len(x.dm_log) - 3} DMs sent to them")
        x.receive_dm(writer["id"], "Hi! Found you through the conference talk.")
        x.receive_dm(quitter["id"], "STOP")  # never heard from Courtesy: recorded, no answer
        run("8 reply", **reply)
        x.receive_dm(writer["id"], "stop")  # welcomed: one confirmation
        run("9 reply", **reply)
        run("10 reply", **reply)
        for dm in x.dm_log[3:]:
            print(f"  sandbox received DM to @{x.user(dm['recipient_id'])['username']}: {dm['text']}")

        _say(
            "6. WelcomeMode=digest sends no DM at all: once a day (its own schedule) the function publishes the new "
            "followers to the stack's SNS topic, notable ones first, each with a profile link and a suggested note "
            "for a person to send by hand. Here the topic delivers to a local queue:"
        )
        sqs = aws.client("sqs")
        inbox = sqs.create_queue(QueueName="demo-digest")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.client("sns").subscribe(TopicArn=LOCAL_NAMES["AlarmTopic"], Protocol="sqs", Endpoint=inbox_arn)
        digest = {"DRY_RUN": "false", "WELCOME_MODE": "digest"}
        x.add_follower(username="margaret_h", name="Margaret Hamilton", verified=True)
        x.add_follower(username="dennis_r", name="Dennis Ritchie")
        run("11 digest", **digest)
        digest_event = {**load_event("digest.json"), "scheduled_time": (slot + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        run("digest", digest_event, **digest)
        for message in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
            envelope = json.loads(message["Body"])
            print(f"\n  Subject: {envelope['Subject']}\n" + textwrap.indent(envelope["Message"], "  | "))

        print("\nRun summaries:\n")
        print(_table(rows))
        welcomes: dict[str, int] = {}
        for dm in x.dm_log:
            if not dm["text"].startswith("Got it"):  # opt-out confirmations aside
                welcomes[dm["recipient_id"]] = welcomes.get(dm["recipient_id"], 0) + 1
        print(f"\nThe function's structured logs: {LOG_PATH}")
        print(
            f"The sandbox's own DM log: {len(x.dm_log)} DMs, {sum(welcomes.values())} of them welcomes to "
            f"{len(welcomes)} people, at most {max(welcomes.values(), default=0)} each; {x.users_returned} follower "
            f"records and {x.dm_events_returned} DM events read from X in all."
        )


if __name__ == "__main__":
    main()
