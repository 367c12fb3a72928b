"""`make demo`: Courtesy end to end on this machine, with nothing real touched.

Starts the local X sandbox and a local DynamoDB (moto), then runs the real
handler on events/schedule.json-shaped events, slot after slot:
baseline -> new followers -> dry-run preview -> live run -> rerun, then the
two modes X's rules allow: reply (answer a follower's first message, honour
"stop") and digest (a daily list for a person, published to the SNS topic).
Last, webhook delivery: the receiver on a local Function URL, registered with the
sandbox's X Activity API by `courtesy webhook setup`; follows and messages arrive
as signed events, go through SQS to the handler, and are answered in seconds.

`--record PATH` writes the sandbox's own records (DM log, webhook deliveries, CRC
checks) as JSON, for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from courtesy.observability import logger
from sandbox import XSandbox
from tools.local_aws import LOCAL_NAMES, LocalAws, apply_environment, restore_environment
from tools.local_queue import QueuePump, mapping_settings
from tools.local_run import LocalFunction, event_for_slot, load_event
from tools.local_url import stack_receiver

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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description="Courtesy end to end on this machine.")
    parser.add_argument("--record", type=Path, help="write the sandbox's own records (DMs, webhook deliveries) here, as JSON")
    args = parser.parse_args(argv)
    log_file = open(LOG_PATH, "w")  # noqa: SIM115 - kept open for the whole demo
    previous = logger.registered_handler.setStream(log_file)  # the function's JSON logs go to a file, not the screen
    try:
        _demo(log_file, args.record)
    finally:
        logger.registered_handler.setStream(previous)
        log_file.close()


def _courtesy(aws: LocalAws, *args: str) -> int:
    """The operator's `courtesy` command, run in this process against the local AWS; shows its output."""
    from courtesy_cli.main import main as courtesy  # the operator CLI (cli/), installed in .venv

    print(f"\n  $ courtesy {' '.join(args)}")
    out = io.StringIO()
    previous = apply_environment(aws.client_env)  # as an operator's shell would point it at this AWS
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = courtesy(list(args))
    finally:
        restore_environment(previous)
    print("\n".join(f"  | {line}".rstrip() for line in out.getvalue().rstrip().splitlines()))
    return code


def _demo(log_file, record: Path | None = None) -> None:  # type: ignore[no-untyped-def]
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
        print(f"Local DynamoDB, Secrets Manager, SNS and SQS (moto) at {aws.endpoint}; resources made from template.yaml")

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

        _webhook_segment(x, aws, function, log_file)

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
        events = sum(x.billed_activity_events_per_day().values())
        print(
            f"X Activity API: {len(x.webhook_deliveries)} signed deliveries of {events} events, billed "
            f"${x.activity_cost_usd():.3f} (each event once, however often delivered)."
        )
        if record is not None:
            record.write_text(
                json.dumps(
                    {
                        "dm_log": x.dm_log,
                        "usernames": {dm["recipient_id"]: x.user(dm["recipient_id"])["username"] for dm in x.dm_log},
                        "webhook_deliveries": x.webhook_deliveries,
                        "crc_requests": x.crc_requests,
                    },
                    indent=1,
                )
            )


def _webhook_segment(x: XSandbox, aws: LocalAws, function: LocalFunction, log_file) -> None:  # type: ignore[no-untyped-def]
    _say(
        "7. Delivery=webhook: X pushes follows and messages to the stack as events (X Activity API), so nobody "
        "waits for the next 15-minute run. The receiver (a public Function URL) checks X's signature and queues "
        "each event in SQS; the function takes them in batches. Here the receiver runs on a local URL with the "
        "stack's event queue, and the operator registers it with X, which checks it with a CRC request:"
    )
    hooks = _Webhook(x, aws, function, log_file)
    with stack_receiver(aws, hooks.queue_url) as receiver:
        hooks.courtesy("setup", "--url", receiver.url)
        crc = x.crc_requests[-1]
        print(f"  X's CRC check of {crc['url']}: answered {crc['status']}, valid: {str(crc['valid']).lower()}")
        x.start_auto_delivery()  # from now on the sandbox POSTs each event as it happens
        try:
            _webhook_events(x, hooks, receiver.url)
        finally:
            x.stop_auto_delivery()


def _webhook_events(x: XSandbox, hooks: _Webhook, url: str) -> None:
    _say(
        "A new person follows, live in dm mode. X POSTs the signed follow.follow event at once; the event source "
        f"mapping hands the function a batch within {hooks.pump.batching_window:g} s (its batching window):"
    )
    elapsed, fan = hooks.step(lambda: x.add_follower(username="alan_t", name="Alan Turing"), 1, lambda fan: x.dms_to(fan["id"]))
    print(f"  @alan_t welcomed {elapsed:.1f} s after following: {x.dms_to(fan['id'])[0]['text']}")

    _say('In reply mode a follow alone sends nothing; a new follower who writes "hi" is answered in seconds:')
    hooks.env["WELCOME_MODE"] = "reply"
    _, writer = hooks.step(lambda: x.add_follower(username="barbara_l", name="Barbara Liskov"), 1)
    print(f"  DMs to @barbara_l: {len(x.dms_to(writer['id']))}")
    elapsed, _ = hooks.step(lambda: x.receive_dm(writer["id"], "hi"), 1, lambda _: x.dms_to(writer["id"]))
    print(f"  @barbara_l answered {elapsed:.1f} s after writing: {x.dms_to(writer['id'])[0]['text']}")

    _say(
        "X may deliver an event more than once, and the operator can ask X to deliver the past 24 hours again: "
        "each event is handled once, by its event_uuid."
    )
    dms, events = len(x.dm_log), len({a["event_uuid"] for a in x.webhook_deliveries})
    hooks.step(lambda: hooks.courtesy("replay", "--since", "30m"), events)
    print(f"  new DMs: {len(x.dm_log) - dms}")

    _say("A request to the public URL without X's signature is refused, and nothing is queued:")
    body = json.dumps({"data": {"event_uuid": "1", "event_type": "follow.follow", "filter": {"user_id": x.account_id}, "payload": {}}})
    unsigned = requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=10)
    forged = requests.post(url, data=body, headers={"x-twitter-webhooks-signature": "sha256=AAAA"}, timeout=10)
    print(f"  unsigned: {unsigned.status_code}; wrongly signed: {forged.status_code}; messages in the queue: {hooks.pump.depth()}")


class _Webhook:
    """Segment 7's moving parts: the stack's event queue, and a pump handing its batches to the
    function as the template's event source mapping does (its batch size and batching window)."""

    def __init__(self, x: XSandbox, aws: LocalAws, function: LocalFunction, log_file) -> None:  # type: ignore[no-untyped-def]
        self.x, self.aws, self.function, self.log_file = x, aws, function, log_file
        self.env = {"DRY_RUN": "false"}
        self.queue_url = aws.create_webhook_queues()
        self.pump = QueuePump(aws.client("sqs"), self.queue_url, self._invoke, **mapping_settings(aws.template))
        self._batches: list[str] = []

    def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        emf = io.StringIO()
        with contextlib.redirect_stdout(emf):  # CloudWatch EMF metric records are printed to stdout
            answer = self.function.invoke(event, **self.env)
        self.log_file.flush()
        kinds = ", ".join(json.loads(r["body"])["event_type"] for r in event["Records"])
        failed = len(answer.get("batchItemFailures", []))
        self._batches.append(f"  the function took a batch of {len(event['Records'])} ({kinds}): {failed} failed")
        return answer

    def step(self, action: Callable[[], Any], deliveries: int, done: Callable[[Any], object] = lambda _: True) -> tuple[float, Any]:
        """Do `action` (on X), then hand batches to the function until X has made `deliveries` more
        deliveries, the queue is empty and `done(what action returned)`; shows both sides.
        Returns the seconds it took (wall clock) and what `action` returned."""
        seen = len(self.x.webhook_deliveries)
        started = time.monotonic()
        result = action()
        self.pump.run_until(lambda: len(self.x.webhook_deliveries) >= seen + deliveries and self.pump.depth() == 0 and bool(done(result)))
        elapsed = time.monotonic() - started
        attempts = self.x.webhook_deliveries[seen:]
        print("  X delivered " + ", ".join(f"{a['event_type']}{' again' if a['replay'] else ''}: {a['status']}" for a in attempts))
        print("\n".join(self._batches))
        self._batches.clear()
        return elapsed, result

    def courtesy(self, *args: str) -> None:
        """`courtesy webhook ARGS` as the operator runs it, here with the local secret and sandbox named."""
        from courtesy_cli import webhook  # the CLI's "now" (replay windows) is the sandbox's clock, as X's is

        webhook.clock, clock = self.x.now, webhook.clock
        try:
            secret = ("--secret", LOCAL_NAMES["XCredentialsSecret"])
            code = _courtesy(self.aws, *secret, "webhook", *args, "--x-api-base-url", self.x.base_url)
        finally:
            webhook.clock = clock
        if code != 0:
            raise SystemExit(f"courtesy webhook {args[0]} failed: see above")


if __name__ == "__main__":
    main()
