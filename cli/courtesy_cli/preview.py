"""A dry run from a laptop: the real welcome cycle against the real account, writing nothing.

The cycle reads X with the stack's credentials and the ledger through a read-through
overlay (courtesy.ledger_store.MemoryStore over the table's DynamoStore): every write it
would make (queueing a new follower, skipping one, the meta item) stays in memory, checked
against the same lifecycle conditions, so a preview can never disturb a live run.
Settings are the deployed function's own (its environment, when the stack's function
can be read), with DRY_RUN forced on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from courtesy.errors import CourtesyError
from courtesy.ledger import Ledger, plain
from courtesy.ledger_store import KEY, DynamoStore, MemoryStore
from courtesy.observability import logger as function_logger
from courtesy.settings import Settings, x_api_origin
from courtesy.welcome_cycle import WelcomeCycle
from courtesy.x_account import XAccount
from courtesy_cli import ui
from courtesy_cli.resources import CliError, Resources, explain_aws_error

# Plenty: a laptop has no Lambda timeout, and the cycle keeps a reserve below this anyway.
TIME_LEFT_SECONDS = 900.0
# Never taken from the function's environment: they would point the preview elsewhere.
_NOT_INHERITED = ("AWS_", "_HANDLER", "LAMBDA_", "POWERTOOLS_")


@dataclass
class PreviewResult:
    summary: dict[str, Any]
    changes: list[dict[str, str]]  # what the run would have written to the ledger (kept in memory)
    config_source: str
    x_api: str = ""  # the X API's scheme://host[:port] the preview talked to


@contextlib.contextmanager
def function_logs_to_stderr(level: int) -> Iterator[None]:
    """The function logs JSON to stdout for CloudWatch; here stdout is the operator's table."""
    handler = function_logger.registered_handler
    streaming = handler if isinstance(handler, logging.StreamHandler) else None
    stream = streaming.setStream(sys.stderr) if streaming is not None else None
    previous = function_logger.log_level
    function_logger.setLevel(level)
    try:
        yield
    finally:
        function_logger.setLevel(previous)
        if streaming is not None and stream is not None:
            streaming.setStream(stream)


def function_environment(resources: Resources, function_name: str) -> dict[str, str]:
    """The deployed function's settings, without what would point the preview at AWS's Lambda internals."""
    variables = resources.function_environment(function_name)
    return {k: v for k, v in variables.items() if not k.startswith(_NOT_INHERITED)}


def load_credentials(resources: Resources, secret_id: str) -> dict[str, str]:
    try:
        raw = resources.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError) as exc:
        raise explain_aws_error(exc, "reading the X credentials secret") from None
    except KeyError:
        raise CliError("The X credentials secret holds no SecretString") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise CliError("The X credentials secret is not valid JSON") from None  # never echo its text


def run_preview(
    resources: Resources,
    *,
    x_api_base_url: str | None,
    max_welcomes: int | None,
    templates: str | None,
    use_function_settings: bool,
    log_level: int = logging.WARNING,
) -> PreviewResult:
    ledger_table = resources.name("ledger_table")
    secret_id = resources.name("secret")
    env: dict[str, str] = {}
    source = "defaults"
    if use_function_settings:
        function_name = resources.name("function", required=False)
        if function_name:
            try:
                env.update(function_environment(resources, function_name))
                source = f"function {function_name}"
            except CliError as exc:
                source = f"defaults: {exc}"
    # Where the credentials go. A host that is not X's needs the same opt-in as the function:
    # --x-api-base-url on the command line is one; $X_API_BASE_URL needs $X_API_ALLOW_OTHER_HOST=true;
    # the function's own X_API_BASE_URL comes with its own X_API_ALLOW_OTHER_HOST.
    if x_api_base_url:
        base_url, allow_other_host = x_api_base_url, "true"
    elif os.environ.get("X_API_BASE_URL", "").strip():
        base_url, allow_other_host = os.environ["X_API_BASE_URL"], os.environ.get("X_API_ALLOW_OTHER_HOST", "")
    else:
        base_url, allow_other_host = env.get("X_API_BASE_URL", ""), env.get("X_API_ALLOW_OTHER_HOST", "")
    env.update(
        {
            "LEDGER_TABLE_NAME": ledger_table,
            "IDEMPOTENCY_TABLE_NAME": resources.explicit.get("idempotency_table") or "unused-by-preview",
            "X_CREDENTIALS_SECRET_ID": secret_id,
            "DRY_RUN": "true",
            "X_API_BASE_URL": base_url,
            "X_API_ALLOW_OTHER_HOST": allow_other_host,
        }
    )
    if max_welcomes is not None:
        env["MAX_WELCOMES_PER_RUN"] = str(max_welcomes)
    if templates is not None:
        env["WELCOME_TEMPLATES"] = templates
    try:
        settings = Settings.from_env(env)
    except CourtesyError as exc:
        raise CliError(str(exc)) from None
    # Said before anything is sent, on stderr so --json output stays JSON.
    note = "" if not settings.x_api_other_host else "   (not X: the stack's X credentials are sent to this host)"
    ui.console(stderr=True).print(ui.cell(f"X API: {settings.x_api_origin}{note}"))

    overlay = MemoryStore(under=DynamoStore(resources.dynamodb, ledger_table))  # reads the table; writes stay here
    try:
        x = XAccount(load_credentials(resources, secret_id), base_url=settings.x_api_base_url)
    except CourtesyError as exc:  # names missing keys, never values
        raise CliError(str(exc)) from None
    cycle = WelcomeCycle(
        x=x,
        ledger=Ledger(store=overlay),
        settings=settings,
        now=lambda: datetime.now(UTC),
        time_left=lambda: TIME_LEFT_SECONDS,
        run_id=f"preview/{uuid.uuid4()}",
    )
    try:
        with function_logs_to_stderr(log_level):
            summary = cycle.run().as_dict()
    except CourtesyError as exc:
        raise CliError(f"The preview run stopped: {exc}", code=1) from None
    except (ClientError, BotoCoreError) as exc:
        raise explain_aws_error(exc, "reading the ledger") from None
    finally:
        x.close()
    changes = []
    for before, after in overlay.changes():
        if after is None or str(after.get(KEY, "")).startswith("#"):
            continue  # the meta item: head, page size, counters
        old, new = plain(before or {}), plain(after)
        changes.append(
            {
                "follower_id": new["follower_id"],
                "username": new.get("username", ""),
                "from": old.get("state", "new"),
                "to": new.get("state", ""),
                "reason": new.get("reason", "") or new.get("detail", "") or new.get("opt_out_word", ""),
            }
        )
    return PreviewResult(summary, changes, source, x_api_origin(settings.x_api_base_url))
