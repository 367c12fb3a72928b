"""`courtesy webhook setup|status|replay`: the stack's receiver registered with X's Activity API.

X's side of webhook delivery (X_API_FACTS.md, "Webhooks" and "Follows and DMs as events"):

- ``setup`` registers the stack's Function URL (``POST /2/webhooks``, which makes X send a CRC
  check to it; ``PUT /2/webhooks/:id`` re-runs the check when the URL is already registered) and
  subscribes it to the account's follow.follow, follow.unfollow and dm.received events
  (``POST /2/activity/subscriptions``), skipping subscriptions that already exist. Running it
  twice changes nothing but a fresh CRC check.
- ``status`` shows the app's webhooks (valid, created_at), its subscriptions and, when the
  stack's event queue is known, how many events wait in it.
- ``replay --since 2h`` asks X to deliver again everything it delivered (or tried to) in a
  window of at most the past 24 hours (``POST /2/webhooks/replay``).

Credentials come from the stack's credentials secret: the app-only bearer token
(``bearer_token``) for the webhook endpoints, the user's own credentials (OAuth 1.0a, or an
OAuth 2.0 access token) for ``/2/users/me`` and for subscribing (dm.received is private: X wants
the user's own token). The receiver's check uses ``consumer_secret``; it is never read here.
Nothing printed ever holds a token or a secret: X's errors are named by status, title and code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError

from courtesy.ledger import RECENT_EVENTS_KEY, Ledger
from courtesy.settings import X_DEFAULT_BASE_URL, base_url_problem, is_x_api_host, x_api_origin
from courtesy_cli import ui
from courtesy_cli.resources import CliError, Resources, explain_aws_error

EVENT_TYPES = ("follow.follow", "follow.unfollow", "dm.received")
SUBSCRIPTION_TAG = "courtesy"
MAX_REPLAY = timedelta(hours=24)
WEBHOOK_URL_OUTPUT = "WebhookUrl"
QUEUE_URL_OUTPUT = "WebhookEventQueueUrl"  # not (yet) a template output: the queue resource is read instead
QUEUE_RESOURCE = "WebhookEventQueue"
DLQ_URL_OUTPUT = "WebhookEventDeadLetterQueueUrl"
# POST and PUT /2/webhooks wait for X's CRC check of the receiver (up to 10 seconds).
TIMEOUT = (5.0, 30.0)

clock: Callable[[], float] = time.time  # tests may point it at the sandbox's clock


# --- X's Activity API over requests ------------------------------------------------------------


def _error_code(body: dict[str, Any]) -> str:
    """X's error code (e.g. DuplicateUrlFailed) when its first error message leads with one."""
    errors = body.get("errors")
    message = errors[0].get("message") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    match = re.match(r"^([A-Z][A-Za-z]{2,60}):", message) if isinstance(message, str) else None
    return match.group(1) if match else ""


class ActivityApi:
    """The few X endpoints these commands use. Errors become CliErrors naming status, title and code."""

    def __init__(self, credentials: dict[str, Any], base_url: str):
        self.base_url = base_url.rstrip("/")
        self.origin = x_api_origin(self.base_url)
        self._credentials = credentials
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def _app_auth(self) -> dict[str, str]:
        token = self._credentials.get("bearer_token")
        if not isinstance(token, str) or not token.strip():
            raise CliError(
                "The X credentials secret has no bearer_token: X's webhook endpoints take the app's bearer token "
                "(developer portal, the app's Keys and tokens). Add it to the secret under the key bearer_token."
            )
        return {"Authorization": f"Bearer {token.strip()}"}

    def _user_auth(self) -> dict[str, Any]:
        from courtesy.x_account import CREDENTIAL_KEYS, is_oauth2  # the function's code: only when needed

        creds = self._credentials
        if is_oauth2(creds):
            token = creds.get("access_token")
            if not isinstance(token, str) or not token.strip():
                raise CliError("The X credentials secret has no OAuth 2.0 access_token")
            expires_at = creds.get("expires_at")
            if isinstance(expires_at, int | float) and expires_at <= time.time():
                raise CliError(
                    "The OAuth 2.0 access token in the X credentials secret has expired: the next scheduled run refreshes it "
                    "(or pass --account-id; subscribing to dm.received still needs a live user token)."
                )
            return {"headers": {"Authorization": f"Bearer {token.strip()}"}}
        missing = [k for k in CREDENTIAL_KEYS if not isinstance(creds.get(k), str) or not creds[k].strip()]
        if missing:
            raise CliError(f"The X credentials secret lacks {', '.join(missing)} (the account's user-context credentials)")
        from requests_oauthlib import OAuth1

        return {"auth": OAuth1(creds["consumer_key"], creds["consumer_secret"], creds["access_token"], creds["access_token_secret"])}

    def call(self, method: str, path: str, doing: str, *, user: bool = False, body: Any = None, params: Any = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = self._user_auth() if user else {"headers": self._app_auth()}
        if body is not None:
            kwargs["json"] = body
        try:
            response = self.session.request(method, self.base_url + path, params=params, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise CliError(f"Could not reach the X API at {self.origin} while {doing} ({type(exc).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        if not 200 <= response.status_code < 300:
            title = answer.get("title") or response.reason or "error"
            code = _error_code(answer)
            hint = ""
            if response.status_code == 401:
                hint = (
                    ": check the bearer_token in the X credentials secret"
                    if not user
                    else ": check the account's credentials in the secret"
                )
            raise CliError(f"X answered {response.status_code} ({str(title)[:80]}{', ' + code if code else ''}) while {doing}{hint}")
        return answer

    def paged(self, path: str, doing: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        for _ in range(100):
            answer = self.call("GET", path, doing, params=params or None)
            data = answer.get("data")
            if isinstance(data, list):
                items.extend(d for d in data if isinstance(d, dict))
            token = (answer.get("meta") or {}).get("next_token")
            if not isinstance(token, str) or not token:
                break
            params = {"pagination_token": token}
        return items

    def webhooks(self) -> list[dict[str, Any]]:
        return self.paged("/2/webhooks", "listing the app's webhooks")

    def subscriptions(self) -> list[dict[str, Any]]:
        return self.paged("/2/activity/subscriptions", "listing the activity subscriptions")

    def account_id(self) -> str:
        data = self.call("GET", "/2/users/me", "finding the account's user id (GET /2/users/me)", user=True).get("data")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise CliError("X's /2/users/me answer has no data.id")
        return data["id"]


# --- Where things are --------------------------------------------------------------------------


def x_api_base_url(resources: Resources, flag: str | None) -> str:
    """As preview: --x-api-base-url is its own opt-in; $X_API_BASE_URL needs $X_API_ALLOW_OTHER_HOST=true;
    then the deployed function's own X_API_BASE_URL with its X_API_ALLOW_OTHER_HOST; then X."""
    if flag:
        base_url, allow = flag, "true"
    elif os.environ.get("X_API_BASE_URL", "").strip():
        base_url, allow = os.environ["X_API_BASE_URL"], os.environ.get("X_API_ALLOW_OTHER_HOST", "")
    else:
        env: dict[str, str] = {}
        try:
            name = resources.name("function", required=False)
            env = resources.function_environment(name) if name else {}
        except CliError:
            env = {}
        base_url, allow = env.get("X_API_BASE_URL", ""), env.get("X_API_ALLOW_OTHER_HOST", "")
    base_url = (base_url.strip() or X_DEFAULT_BASE_URL).rstrip("/")
    if problem := base_url_problem(base_url, allow_other_host=allow.strip().lower() == "true"):
        raise CliError(problem)
    return base_url


def _output(resources: Resources, key: str) -> str:
    """A stack output, or "" when there is no such output or no stack (a local setup)."""
    try:
        return resources.stack_outputs().get(key, "")
    except CliError:
        return ""


def webhook_url(resources: Resources, flag: str | None) -> str:
    url = (flag or "").strip() or _output(resources, WEBHOOK_URL_OUTPUT)
    if not url:
        raise CliError(
            f"No webhook URL: stack {resources.stack!r} has no {WEBHOOK_URL_OUTPUT} output "
            "(deploy it with webhook delivery), or pass --url URL."
        )
    return url


def queue_url(resources: Resources, flag: str | None) -> str:
    if flag:
        return flag
    if url := _output(resources, QUEUE_URL_OUTPUT):
        return url
    try:  # an SQS queue's physical id is its URL
        answer = resources.client("cloudformation").describe_stack_resource(StackName=resources.stack, LogicalResourceId=QUEUE_RESOURCE)
        return str(answer["StackResourceDetail"].get("PhysicalResourceId") or "")
    except (ClientError, BotoCoreError, KeyError, CliError):
        return ""


def credentials(resources: Resources) -> dict[str, Any]:
    from courtesy_cli.preview import load_credentials  # names problems, never values

    creds = load_credentials(resources, resources.name("secret"))
    if not isinstance(creds, dict):
        raise CliError("The X credentials secret does not hold a JSON object")
    return creds


def _api(resources: Resources, args: argparse.Namespace) -> ActivityApi:
    base_url = x_api_base_url(resources, args.x_api_base_url)
    api = ActivityApi(credentials(resources), base_url)
    if not is_x_api_host(base_url):
        ui.console(stderr=True).print(ui.cell(f"X API: {api.origin}   (not X: the stack's X credentials are sent to this host)"))
    return api


def _find(webhooks: list[dict[str, Any]], url: str) -> dict[str, Any] | None:
    return next((w for w in webhooks if w.get("url") == url), None)


def _yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "?"


# --- setup ---------------------------------------------------------------------------------------


def cmd_setup(resources: Resources, args: argparse.Namespace) -> int:
    url = webhook_url(resources, args.url)
    api = _api(resources, args)
    out = ui.console()
    try:
        existing = _find(api.webhooks(), url)
        if existing is not None:
            webhook_id = str(existing["id"])
            answer = api.call("PUT", f"/2/webhooks/{webhook_id}", "re-validating the webhook (PUT /2/webhooks/:id)")
            valid = (answer.get("data") or {}).get("valid")
            out.print(ui.cell(f"Webhook {webhook_id} already registered for {url}: X re-ran its CRC check."))
        else:
            answer = api.call("POST", "/2/webhooks", "registering the webhook (POST /2/webhooks)", body={"url": url})
            data = answer.get("data") or {}
            if not data.get("id"):
                raise CliError("X's answer to POST /2/webhooks has no data.id")
            webhook_id, valid = str(data["id"]), data.get("valid")
            out.print(ui.cell(f"Webhook {webhook_id} registered for {url}."))
        out.print(ui.cell(f"valid: {_yes_no(valid)}" + ("" if valid else "   (X's CRC check failed: see below)")))

        account_id = args.account_id or api.account_id()
        have = {
            str(s.get("event_type"))
            for s in api.subscriptions()
            if str(s.get("webhook_id")) == webhook_id and str((s.get("filter") or {}).get("user_id")) == account_id
        }
        rows = []
        for event_type in EVENT_TYPES:
            if event_type in have:
                rows.append((event_type, account_id, "already subscribed"))
                continue
            body = {"event_type": event_type, "filter": {"user_id": account_id}, "tag": SUBSCRIPTION_TAG, "webhook_id": webhook_id}
            answer = api.call("POST", "/2/activity/subscriptions", f"subscribing to {event_type}", user=True, body=body)
            rows.append((event_type, account_id, "subscribed " + str((answer.get("data") or {}).get("subscription_id", ""))))
        out.print(ui.table(f"Subscriptions of webhook {webhook_id}", ("event type", "account", "result"), rows))
    finally:
        api.close()
    if not valid:
        ui.console(stderr=True).print(
            ui.cell(
                "X could not validate the webhook: the receiver must answer X's CRC GET with 200 within 10 seconds, "
                "signed with the consumer_secret of the credentials secret. Events are delivered to valid webhooks only; "
                "run `courtesy webhook setup` again once it is fixed."
            ),
            style="red",
        )
        return 1
    out.print(ui.cell("X validated the webhook: events for the account are delivered to it."), style="bold")
    return 0


# --- status --------------------------------------------------------------------------------------


def queue_depth(resources: Resources, url: str) -> dict[str, int]:
    try:
        attributes = resources.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
    except (ClientError, BotoCoreError) as exc:
        raise explain_aws_error(exc, "reading the event queue's depth") from None
    return {
        "waiting": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def recent_events(resources: Resources) -> dict[str, Any] | None:
    """The newest events the worker handled (its "#webhook-events" record), or None without a ledger table."""
    try:
        table = resources.name("ledger_table", required=False)
    except CliError:
        return None
    if not table:
        return None
    try:
        item = Ledger(resources.dynamodb, table).get(RECENT_EVENTS_KEY) or {}
    except (ClientError, BotoCoreError) as exc:
        raise explain_aws_error(exc, "reading the recent webhook events") from None
    try:
        events = json.loads(item.get("recent") or "[]")
    except ValueError:
        events = []
    return {"last_batch_at": item.get("last_batch_at", ""), "events": [e for e in events if isinstance(e, dict)]}


def cmd_status(resources: Resources, args: argparse.Namespace) -> int:
    stack_url = (args.url or "").strip() or _output(resources, WEBHOOK_URL_OUTPUT)
    api = _api(resources, args)
    try:
        webhooks = api.webhooks()
        subscriptions = api.subscriptions()
    finally:
        api.close()
    report: dict[str, Any] = {
        "x_api": api.origin,
        "webhook_url": stack_url or None,
        "webhooks": [
            {k: w.get(k) for k in ("id", "url", "valid", "created_at")} | {"this_stack": bool(stack_url) and w.get("url") == stack_url}
            for w in webhooks
        ],
        "subscriptions": [
            {
                "subscription_id": s.get("subscription_id"),
                "event_type": s.get("event_type"),
                "user_id": (s.get("filter") or {}).get("user_id"),
                "webhook_id": s.get("webhook_id"),
                "created_at": s.get("created_at"),
            }
            for s in subscriptions
        ],
    }
    mine = _find(webhooks, stack_url) if stack_url else None
    if mine is not None:
        subscribed = {s["event_type"] for s in report["subscriptions"] if str(s["webhook_id"]) == str(mine.get("id"))}
        report["missing_subscriptions"] = [t for t in EVENT_TYPES if t not in subscribed]
    report["recent_events"] = recent_events(resources)
    url = queue_url(resources, args.queue_url)
    report["queue"] = queue_depth(resources, url) if url else None
    dlq = _output(resources, DLQ_URL_OUTPUT)
    report["dead_letter_queue"] = queue_depth(resources, dlq) if dlq else None
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    out = ui.console()
    out.print(ui.cell(f"X API: {api.origin}"))
    if stack_url and mine is None:
        out.print(ui.cell(f"The stack's webhook URL {stack_url} is not registered with X: run `courtesy webhook setup`."), style="bold")
    if report["webhooks"]:
        rows = [
            (w["id"], w["url"], _yes_no(w["valid"]), w["created_at"] or "", "yes" if w["this_stack"] else "") for w in report["webhooks"]
        ]
        out.print(ui.table(f"Webhooks ({len(rows)})", ("id", "url", "valid", "created at", "this stack"), rows))
    else:
        out.print("No webhooks registered with X.")
    if any(w["valid"] is False for w in report["webhooks"]):
        out.print("An invalid webhook gets no events: fix the receiver, then `courtesy webhook setup` re-runs X's check.")
    if report["subscriptions"]:
        rows = [
            (s["subscription_id"], s["event_type"], s["user_id"], s["webhook_id"], s["created_at"] or "") for s in report["subscriptions"]
        ]
        out.print(ui.table(f"Subscriptions ({len(rows)})", ("id", "event type", "account", "webhook", "created at"), rows))
    else:
        out.print("No activity subscriptions.")
    if report.get("missing_subscriptions"):
        out.print(ui.cell(f"Not subscribed: {', '.join(report['missing_subscriptions'])}: run `courtesy webhook setup`."))
    recent = report["recent_events"]
    if recent is None:
        out.print("Events received: unknown (no ledger table named; pass --ledger-table)")
    elif not recent["events"]:
        out.print("Events received: none handled yet.")
    else:
        handled = [(str(e.get("at", "")), str(e.get("event_type", "")), str(e.get("outcome", ""))) for e in recent["events"]]
        title = f"Last events handled (newest first; last batch {recent['last_batch_at']})"
        out.print(ui.table(title, ("at", "event", "outcome"), handled))
    if report["queue"] is not None:
        q = report["queue"]
        out.print(ui.cell(f"Event queue: {q['waiting']} waiting, {q['in_flight']} being handled"))
    else:
        out.print("Event queue: unknown (pass --queue-url URL)")
    if report["dead_letter_queue"] is not None:
        out.print(ui.cell(f"Dead-letter queue: {report['dead_letter_queue']['waiting']} events Courtesy could not handle"))
    return 0


# --- replay --------------------------------------------------------------------------------------


def parse_since(value: str, now: datetime) -> datetime:
    """30m, 2h, 1d, or an ISO 8601 time (UTC unless it says otherwise)."""
    text = value.strip()
    match = re.fullmatch(r"(\d{1,5})\s*([mhd])", text.lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(minutes=amount) * {"m": 1, "h": 60, "d": 1440}[unit]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise CliError(f"--since {value!r}: give a duration (30m, 2h) or an ISO time (2026-12-01T09:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_replay(resources: Resources, args: argparse.Namespace) -> int:
    now = datetime.fromtimestamp(clock(), UTC).replace(second=0, microsecond=0)
    since = parse_since(args.since, now).astimezone(UTC)
    if since > now:
        raise CliError(f"--since {args.since!r} is in the future")
    if now - since > MAX_REPLAY:
        raise CliError(f"--since {args.since!r} reaches back more than 24 hours: X replays at most the past 24 hours")
    since = since.replace(second=0, microsecond=0)
    if now - since > MAX_REPLAY:  # rounding down to the minute must not leave the window
        since += timedelta(minutes=1)
    api = _api(resources, args)
    try:
        if args.webhook_id:
            webhook_id = args.webhook_id
        else:
            webhooks = api.webhooks()
            url = (args.url or "").strip() or _output(resources, WEBHOOK_URL_OUTPUT)
            match = _find(webhooks, url) if url else (webhooks[0] if len(webhooks) == 1 else None)
            if match is None:
                raise CliError(
                    "No webhook to replay to: "
                    + (f"{url} is not registered with X (courtesy webhook setup)" if url else "pass --webhook-id ID or --url URL")
                )
            webhook_id = str(match["id"])
        body = {"webhook_id": webhook_id, "from_date": since.strftime("%Y%m%d%H%M"), "to_date": now.strftime("%Y%m%d%H%M")}
        answer = api.call("POST", "/2/webhooks/replay", "starting a replay (POST /2/webhooks/replay)", body=body)
    finally:
        api.close()
    job = answer.get("job_id") or (answer.get("data") or {}).get("job_id") or "?"
    window = f"{since:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC"
    ui.console().print(ui.cell(f"Replay job {job} started for webhook {webhook_id}: X delivers again what it sent {window}."))
    ui.console().print("The worker deduplicates by event_uuid: nobody is welcomed twice.")
    return 0


ACTIONS = {"setup": cmd_setup, "status": cmd_status, "replay": cmd_replay}


def add_parser(commands: Any) -> None:
    webhook = commands.add_parser(
        "webhook",
        help="register the stack's webhook with X's Activity API, show it, replay missed events",
        description="Webhook delivery: X POSTs follow and DM events to the stack's receiver (its Function URL).",
    )
    actions = webhook.add_subparsers(dest="webhook_action", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help=f"the receiver's public URL (default: the stack's {WEBHOOK_URL_OUTPUT} output)")
        p.add_argument("--x-api-base-url", help="another X API base URL, e.g. the local sandbox (default: $X_API_BASE_URL, then X)")

    setup = actions.add_parser("setup", help="register (or re-validate) the webhook and subscribe it to the account's events")
    common(setup)
    setup.add_argument("--account-id", help="the account's user id (default: asked of X, GET /2/users/me)")
    status = actions.add_parser("status", help="the app's webhooks (valid?), subscriptions, and the event queue's depth")
    common(status)
    status.add_argument("--queue-url", help="the event queue's URL (default: found from the stack)")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    replay = actions.add_parser("replay", help="ask X to deliver again what it sent in a window of the past 24 hours")
    common(replay)
    replay.add_argument("--since", required=True, help="start of the window: 30m, 2h, 24h, or an ISO time (at most 24 hours ago)")
    replay.add_argument("--webhook-id", help="the webhook to replay to (default: the one registered for the URL)")


def cmd_webhook(resources: Resources, args: argparse.Namespace) -> int:
    return ACTIONS[args.webhook_action](resources, args)
