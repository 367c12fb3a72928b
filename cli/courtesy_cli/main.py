"""`courtesy`: the operator's command line for a deployed (or local) Courtesy stack."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from courtesy.settings import WELCOME_MODES, X_DEFAULT_BASE_URL, is_x_api_host, x_api_origin
from courtesy_cli import ui
from courtesy_cli.ledger_ops import EXPORT_COLUMNS, EXPORTED_STATES, REQUEUEABLE, LedgerTable, requeue, requeue_candidates, requeue_queue
from courtesy_cli.resources import CliError, Resources, explain_aws_error

DEFAULT_STACK = "courtesy"
OPTED_OUT_SHOWN = 50  # status lists the newest opt-outs; export has them all
# What the other queues hold, in the operator's words (status shows the ones not empty).
QUEUE_LABELS = {
    "reply-due": "Owed a reply (wrote to the account)",
    "digest": "Waiting for the next digest",
    "opt-out-confirm": "Opt-out confirmations due",
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="courtesy",
        description="Operate a Courtesy stack: see how it is doing, preview the next run, export, block followers.",
        epilog="Resources come from the stack's CloudFormation outputs unless named explicitly. "
        "The standard AWS environment applies (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL).",
    )
    where = top.add_argument_group("where the stack is")
    where.add_argument(
        "--stack", default=os.environ.get("COURTESY_STACK") or DEFAULT_STACK, help="stack name (default: $COURTESY_STACK or courtesy)"
    )
    where.add_argument("--ledger-table", help="the ledger table's name, instead of the stack's LedgerTableName output")
    where.add_argument("--idempotency-table", help="the run records table, instead of the stack's IdempotencyTableName output")
    where.add_argument("--secret", help="the X credentials secret (name or ARN), instead of the stack's XCredentialsSecretArn output")
    where.add_argument("--function", help="the function whose settings preview uses, instead of the stack's FunctionName output")
    where.add_argument("--region", help="AWS region (default: the AWS environment's)")
    where.add_argument("--profile", help="AWS profile (default: the AWS environment's)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    status = commands.add_parser("status", help="ledger counts, backlog, recent runs, notable followers to thank")
    status.add_argument("--runs", type=int, default=10, help="how many recent runs to show (default 10)")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")

    preview = commands.add_parser(
        "preview", help="dry run of the next run against the real account: who would get which message; writes nothing"
    )
    preview.add_argument("--x-api-base-url", help="another X API base URL, e.g. the local sandbox (default: $X_API_BASE_URL, then X)")
    preview.add_argument(
        "--max", type=int, dest="max_welcomes", help="show up to this many welcomes (default: the function's MaxWelcomesPerRun)"
    )
    preview.add_argument("--templates", help="try other templates: a JSON array of strings, as the WelcomeTemplates parameter")
    preview.add_argument("--json", action="store_true", help="print JSON instead of tables")
    preview.add_argument("-v", "--verbose", action="store_true", help="show the function's own log lines (JSON, on stderr)")

    export = commands.add_parser(
        "export", help="CSV of followers welcomed, skipped, undeliverable, failed, uncertain, departed, opted out, listed in a digest"
    )
    export.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    export.add_argument("--state", action="append", choices=EXPORTED_STATES, help="only this state (repeatable; default: all of them)")

    block = commands.add_parser("block", help="never welcome this follower (a pending or not yet seen one)")
    block.add_argument("target", metavar="ID_OR_@USERNAME")
    unblock = commands.add_parser("unblock", help="undo block: the follower goes back to what it was")
    unblock.add_argument("target", metavar="ID_OR_@USERNAME")
    thanked = commands.add_parser("thanked", help="mark a notable follower as thanked personally")
    thanked.add_argument("target", metavar="ID_OR_@USERNAME")

    requeue = commands.add_parser(
        "requeue",
        help="after fixing the cause, put followers X refused (undeliverable) or whose message it rejected (failed) back in the queue",
        description="Shows the followers first, then asks before writing. Each change is conditional on the state shown: "
        "a follower that changed meanwhile is reported and left alone. The next run welcomes them once, if they still follow.",
    )
    requeue.add_argument("targets", nargs="*", metavar="ID_OR_@USERNAME", help="only these followers (default: all in the states chosen)")
    requeue.add_argument("--state", action="append", choices=REQUEUEABLE, help="only this state (repeatable; default: both)")
    requeue.add_argument("--mode", choices=WELCOME_MODES, help="the welcome mode whose queue they go to (default: the deployed function's)")
    requeue.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation (for scripts)")

    from courtesy_cli.webhook import add_parser as add_webhook_parser

    add_webhook_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    explicit = {
        key: value
        for key, value in {
            "ledger_table": args.ledger_table,
            "idempotency_table": args.idempotency_table,
            "secret": args.secret,
            "function": args.function,
        }.items()
        if value
    }
    resources = Resources(args.stack, explicit, region=args.region, profile=args.profile)
    try:
        return COMMANDS[args.command](resources, args)
    except CliError as exc:
        ui.console(stderr=True).print(ui.cell(f"error: {exc}"), style="red")
        return exc.code
    except (ClientError, BotoCoreError) as exc:
        ui.console(stderr=True).print(ui.cell(f"error: {explain_aws_error(exc, f'running {args.command}')}"), style="red")
        return 2
    except KeyboardInterrupt:
        return 130


def _ledger(resources: Resources) -> LedgerTable:
    return LedgerTable(resources.dynamodb, resources.name("ledger_table"))


# --- status -----------------------------------------------------------------------


def cmd_status(resources: Resources, args: argparse.Namespace) -> int:
    ledger = _ledger(resources)
    report: dict[str, Any] = {"stack": args.stack if not resources.explicit.get("ledger_table") else None}
    report["ledger_table"] = ledger.name
    report.update(ledger.status())
    report.update(function_settings(resources))
    report["last_runs"] = ledger.last_runs(resources.name("idempotency_table"), args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    out = ui.console()
    out.print(ui.cell(f"Courtesy ledger {ledger.name}: {report['followers']} followers known"), style="bold")
    if not report["baseline_done"]:
        out.print("No baseline yet: the first run records who already follows.")
    else:
        out.print(ui.cell(f"Baseline taken {report['baseline_at']}"))
    if report["welcome_mode"]:
        dry = "on: nothing is sent" if report["dry_run"] else "off"
        out.print(ui.cell(f"Welcome mode: {report['welcome_mode']}   Dry run: {dry}   ({report['settings_source']})"))
        other = "   (not X: XApiAllowOtherHost is true; the X credentials go to this host)" if report["x_api_other_host"] else ""
        out.print(ui.cell(f"X API: {report['x_api']}{other}"))
    else:
        out.print(ui.cell(f"Welcome mode: unknown ({report['settings_source']})"))
        out.print("X API: unknown (the function's settings could not be read)")
    out.print(
        ui.cell(
            f"Backlog (pending): {report['backlog']}   Uncertain: {report['uncertain']}"
            + (f" ({report['uncertain_expired']} too old to check)" if report["uncertain_expired"] else "")
            + f"   Welcomes today ({report['day']} UTC): {report['welcomes_today']}"
        )
    )
    if report["dm_blocked_until"]:
        out.print(ui.cell(f"X's DM rate limit is spent until {report['dm_blocked_until']}"))
    queued = [f"{label}: {report['queues'][queue]}" for queue, label in QUEUE_LABELS.items() if report["queues"].get(queue)]
    if queued:
        out.print(ui.cell("   ".join(queued)))
    out.print(ui.table("Followers by state", ("state", "followers"), report["states"].items()))
    if report["states"].get("listing"):
        out.print(ui.cell(f"{report['states']['listing']} in a digest being published: if that stays, the digest was interrupted"))
    if report["skipped_by_reason"]:
        out.print(ui.table("Skipped by reason", ("reason", "followers"), report["skipped_by_reason"].items()))
    runs = [
        (
            r.get("slot", ""),
            r.get("followers_read", ""),
            r.get("new_followers", ""),
            r.get("welcomed", ""),
            r.get("skipped", ""),
            r.get("failed", ""),
            r.get("pending", ""),
            _yes(r.get("rate_limited")),
            _yes(r.get("dry_run")),
            _yes(r.get("baseline")),
        )
        for r in report["last_runs"]
    ]
    columns = ("slot", "read", "new", "welcomed", "skipped", "failed", "pending", "rate-limited", "dry run", "baseline")
    out.print(
        ui.table(f"Last runs (newest first, {len(runs)})", columns, runs) if runs else "No completed runs recorded (records last 24 hours)."
    )
    notable = report["notable_unthanked"]
    if notable:
        rows = [(n["follower_id"], "@" + n["username"], n["name"], n["state"], n["first_seen_at"], n["profile"]) for n in notable]
        listing = ui.table(
            f"Notable followers to thank personally ({len(notable)})",
            ("follower", "username", "name", "state", "first seen", "profile"),
            rows,
        )
        listing.caption = "When done: courtesy thanked ID"
        out.print(listing)
    else:
        out.print("No notable followers waiting for a personal thank-you.")
    opted_out = report["opted_out"]
    if opted_out:
        opt_out_rows = [
            (o["follower_id"], "@" + o["username"] if o["username"] else "", o["opted_out_at"], o["confirmation"])
            for o in opted_out[:OPTED_OUT_SHOWN]
        ]
        shown = f"{len(opted_out)}" if len(opted_out) <= OPTED_OUT_SHOWN else f"newest {OPTED_OUT_SHOWN} of {len(opted_out)}"
        listing = ui.table(
            f"Opted out (never messaged again): {shown}", ("follower", "username", "opted out at", "confirmation"), opt_out_rows
        )
        if len(opted_out) > OPTED_OUT_SHOWN:
            listing.caption = "All of them: courtesy export --state opted_out"
        out.print(listing)
    return 0


def function_settings(resources: Resources) -> dict[str, Any]:
    """The deployed function's welcome mode and dry run, from its environment; None when it cannot be read
    (a local setup named by --ledger-table has no function unless --function names one)."""
    unknown: dict[str, Any] = {"welcome_mode": None, "dry_run": None, "x_api": None, "x_api_other_host": None}
    if not resources.explicit.get("function") and resources.explicit.get("ledger_table"):
        return {**unknown, "settings_source": "no function named: pass --function NAME"}
    name = resources.name("function", required=False)
    if not name:
        return {**unknown, "settings_source": "the stack has no FunctionName output: pass --function NAME"}
    try:
        env = resources.function_environment(name)
    except CliError as exc:
        return {**unknown, "settings_source": str(exc)}
    # The function's own defaults (courtesy.settings) when a variable is unset.
    base_url = (env.get("X_API_BASE_URL", "").strip() or X_DEFAULT_BASE_URL).rstrip("/")
    return {
        "welcome_mode": env.get("WELCOME_MODE", "").strip().lower() or "dm",
        "dry_run": (env.get("DRY_RUN", "").strip().lower() or "true") != "false",
        "x_api": x_api_origin(base_url),  # scheme://host[:port] only: a URL could carry a secret
        "x_api_other_host": not is_x_api_host(base_url),
        "settings_source": f"function {name}",
    }


def _yes(value: Any) -> str:
    return "yes" if value is True else "" if value in (False, None, "") else str(value)


# --- preview --------------------------------------------------------------------------


def cmd_preview(resources: Resources, args: argparse.Namespace) -> int:
    from courtesy_cli.preview import run_preview  # imports the function's code: only when needed

    if args.max_welcomes is not None and not 1 <= args.max_welcomes <= 1000:
        raise CliError("--max must be between 1 and 1000")
    use_function = bool(resources.explicit.get("function")) or not resources.explicit.get("ledger_table")
    result = run_preview(
        resources,
        x_api_base_url=args.x_api_base_url,
        max_welcomes=args.max_welcomes,
        templates=args.templates,
        use_function_settings=use_function,
        log_level=logging.INFO if args.verbose else logging.WARNING,
    )
    summary = result.summary
    if args.json:
        report = {"settings": result.config_source, "x_api": result.x_api, "summary": summary, "ledger_changes_not_written": result.changes}
        print(json.dumps(report, indent=2))
        return 0
    out = ui.console()
    out.print(ui.cell(f"Preview (dry run; settings: {result.config_source}). Nothing was sent and nothing was written."), style="bold")
    out.print(ui.cell(f"X API: {result.x_api}"))
    if summary.get("baseline"):
        out.print("No baseline yet: the next run records who already follows, and welcomes nobody.")
    welcomes = summary.get("would_welcome", [])
    if welcomes:
        rows = [
            (w["follower_id"], "@" + w["username"], w["template_id"] + (" (notable)" if w.get("notable") else ""), w["text"])
            for w in welcomes
        ]
        out.print(ui.table(f"The next run would welcome {len(welcomes)}", ("follower", "username", "template", "message"), rows))
    else:
        out.print("The next run would welcome nobody.")
    if summary.get("skipped_by_reason"):
        out.print(ui.table("The filters would skip", ("reason", "followers"), summary["skipped_by_reason"].items()))
    for key, value in summary.items():
        # Other previews the function may report (e.g. who its filters would skip).
        if key.startswith("would_") and key != "would_welcome" and isinstance(value, list) and value and isinstance(value[0], dict):
            columns = list(value[0])
            out.print(ui.table(key.replace("_", " ").capitalize(), columns, [[row.get(c, "") for c in columns] for row in value]))
    baseline = [c for c in result.changes if c["to"] == "baseline"]
    if baseline:
        out.print(f"The baseline would record {len(baseline)} followers as already there.")
    if changes := [c for c in result.changes if c["to"] != "baseline"]:
        changed = [(c["follower_id"], "@" + c["username"] if c["username"] else "", c["from"], c["to"], c["reason"]) for c in changes]
        out.print(
            ui.table(
                "What the run would record in the ledger (kept in memory, not written)",
                ("follower", "username", "from", "to", "reason"),
                changed,
            )
        )
    out.print(
        ui.cell(
            f"Followers read: {summary.get('followers_read', 0)}   new: {summary.get('new_followers', 0)}   "
            f"backlog after: {summary.get('pending', 0)}   departed: {summary.get('departed', 0)}   "
            f"uncertain: {summary.get('uncertain', 0)}"
        )
    )
    for note in summary.get("notes", []):
        out.print(ui.cell(f"note: {note}"))
    return 0


# --- export ---------------------------------------------------------------------------


def _csv_safe(value: Any) -> str:
    """Display names come from strangers: a cell starting with = + - @ would be a formula in a spreadsheet."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def cmd_export(resources: Resources, args: argparse.Namespace) -> int:
    rows = _ledger(resources).export_rows(tuple(args.state or EXPORTED_STATES))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_safe(row.get(k, "")) for k in EXPORT_COLUMNS})
    if args.output == "-":
        sys.stdout.write(buffer.getvalue())
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
        ui.console(stderr=True).print(ui.cell(f"Wrote {len(rows)} followers to {args.output}"))
    return 0


# --- block, unblock, thanked -------------------------------------------------------------


def cmd_block(resources: Resources, args: argparse.Namespace) -> int:
    ledger = _ledger(resources)
    follower_id, item = ledger.resolve(args.target)
    _, message = ledger.block(follower_id, item)
    ui.console().print(ui.cell(message))
    return 0


def cmd_unblock(resources: Resources, args: argparse.Namespace) -> int:
    ledger = _ledger(resources)
    follower_id, item = ledger.resolve(args.target)
    ui.console().print(ui.cell(ledger.unblock(follower_id, item)))
    return 0


def cmd_thanked(resources: Resources, args: argparse.Namespace) -> int:
    ledger = _ledger(resources)
    follower_id, item = ledger.resolve(args.target)
    _, message = ledger.thanked(follower_id, item)
    ui.console().print(ui.cell(message))
    return 0


# --- requeue ------------------------------------------------------------------------------


def confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin; anything but y/yes (or no answer at all) is no."""
    ui.console(stderr=True).print(ui.cell(f"{question} [y/N] "), end="")
    try:
        answer = sys.stdin.readline()
    except (OSError, EOFError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def cmd_requeue(resources: Resources, args: argparse.Namespace) -> int:
    ledger = _ledger(resources)
    states = tuple(dict.fromkeys(args.state or REQUEUEABLE))
    mode = args.mode
    if mode is None:
        mode = function_settings(resources)["welcome_mode"]
        if mode is None:
            raise CliError(
                "Cannot tell the welcome mode, which decides the queue they go back to: pass --mode dm|reply|digest (or --function NAME)"
            )
    items, not_requeueable = requeue_candidates(ledger, states, args.targets)
    out, err = ui.console(), ui.console(stderr=True)
    for reason in not_requeueable:
        err.print(ui.cell(f"not requeued: {reason}"))
    if not items:
        out.print(ui.cell(f"No followers to requeue (state {' or '.join(states)})."))
        return 1 if not_requeueable else 0
    queues = {item["follower_id"]: requeue_queue(mode, item) for item in items}
    rows = [
        (
            item["follower_id"],
            "@" + item["username"] if item.get("username") else "",
            item.get("state", ""),
            item.get("detail", ""),
            item.get("closed_at", ""),
            queues[item["follower_id"]] or "none (until they write)",
        )
        for item in items
    ]
    people = "follower" if len(items) == 1 else "followers"
    columns = ("follower", "username", "state", "detail", "when", "queue")
    out.print(ui.table(f"{len(items)} {people} to requeue ({mode} mode)", columns, rows))
    if not args.yes and not confirm(f"Requeue {len(items)} {people}?"):
        out.print("Nothing changed.")
        return 1
    results = [requeue(ledger, item, queues[item["follower_id"]]) for item in items]
    for result in results:
        out.print(ui.cell(result.message))
    done = sum(r.done for r in results)
    left = len(results) - done
    summary = f"Requeued {done} of {len(results)}" + (f"; {left} changed meanwhile and were left alone" if left else "")
    out.print(ui.cell(summary + ". The next runs welcome them once each, if they still follow."), style="bold")
    return 0 if not left else 1


def cmd_webhook(resources: Resources, args: argparse.Namespace) -> int:
    from courtesy_cli.webhook import cmd_webhook as run  # requests and the X calls: only when needed

    return run(resources, args)


COMMANDS = {
    "status": cmd_status,
    "preview": cmd_preview,
    "export": cmd_export,
    "block": cmd_block,
    "unblock": cmd_unblock,
    "thanked": cmd_thanked,
    "requeue": cmd_requeue,
    "webhook": cmd_webhook,
}


if __name__ == "__main__":
    sys.exit(main())
