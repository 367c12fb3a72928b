"""Lambda entry point: parse the schedule event, wire the collaborators, run one welcome cycle.

Business decisions live in courtesy.welcome_cycle; this module only connects things.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from courtesy.digest import Digest, DigestMaybePublished
from courtesy.domain import wake_up_event
from courtesy.errors import (
    ConfigurationError,
    CredentialsMissing,
    DigestNotPublished,
    InvalidEvent,
    PersonNeeded,
    TokenRefreshInProgress,
    XUnavailable,
)
from courtesy.event_worker import handle_events
from courtesy.ledger import Ledger
from courtesy.observability import logger, metrics, tracer
from courtesy.policy import policy_for
from courtesy.settings import Settings
from courtesy.welcome_cycle import WelcomeCycle
from courtesy.x_account import XAccount, is_oauth2, refresh_oauth2_tokens
from courtesy.x_auth import LedgerLease, TokenKeeper

SERVICE = "courtesy"
METRICS_NAMESPACE = "Courtesy"
# Credentials are re-read at most this often, so a rotated secret is picked up without a redeploy.
SECRET_MAX_AGE_SECONDS = 300
# Writing refreshed OAuth 2.0 tokens back: bounded, so the refresh lease (x_auth.LEASE_SECONDS) outlives it.
SECRET_WRITE_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
# Publishing the digest: one attempt, never retried by botocore. SNS has no idempotency key, so a
# retry after a timeout or a 5xx (which may have been published) could send the digest twice.
# (botocore's "max_attempts" counts retries, "total_max_attempts" every attempt: 1 = no retry.)
DIGEST_PUBLISH_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 1})
# An idempotency record outlives any retry of its slot (the scheduler gives up after 10 minutes).
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# Runs in a row that stopped because X refused several recipients alike before a person is asked to look.
ACCOUNT_REFUSED_RUNS_FOR_A_PERSON = 3
# The digest schedule's events carry this source (template.yaml, DigestSchedule).
DIGEST_SOURCE = "courtesy.digest"


def schedule_slot(event: Any) -> str:
    """The schedule slot an event stands for: the same for every delivery and retry of it."""
    if not isinstance(event, dict):
        raise InvalidEvent("The event must be a JSON object")
    # EventBridge Scheduler with our explicit Input, or an EventBridge rule's Scheduled Event.
    slot = event.get("scheduled_time") or event.get("time")
    if not isinstance(slot, str) or not slot.strip():
        raise InvalidEvent('The event has no "scheduled_time" (Scheduler input) or "time" (EventBridge rule event)')
    try:
        parsed = datetime.fromisoformat(slot.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"The event's schedule time {slot[:40]!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"The event's schedule time {slot[:40]!r} has no time zone")
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_digest_event(event: dict[str, Any]) -> bool:
    return event.get("source") == DIGEST_SOURCE


def utc_now() -> datetime:
    return datetime.now(UTC)


# The run's clock. Local runs that simulate days (the demo, the tests) move it; Lambda never does.
clock: Callable[[], datetime] = utc_now
sleep: Callable[[float], None] = time.sleep  # and, if they simulate time, this moves it
SQS_MAX_DELAY_SECONDS = 900  # SQS delays a message at most 15 minutes: X's DM window is as long


def send_wake_up(queue_url: str, account_id: str, reset_at: float) -> None:
    """Delivery "webhook": the wake-up event on the event queue, delayed until X's DM window resets."""
    delay = min(SQS_MAX_DELAY_SECONDS, max(0, math.ceil(reset_at - clock().timestamp()) + 1))
    runtime().sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(wake_up_event(account_id, reset_at)), DelaySeconds=delay)


# Simulations replace it too: their clock is not SQS's.
wake_up: Callable[[str, str, float], None] = send_wake_up


def queue_url(queue_arn: str) -> str:
    """An SQS queue's URL from its ARN (arn:partition:sqs:region:account:name)."""
    _, partition, _, region, account, name = queue_arn.split(":")
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def _wake_up_via(records: list[dict[str, Any]]) -> Callable[[str, float], None] | None:
    """Wake-ups go to the queue the batch came from (its records name it)."""
    arn = str(records[0].get("eventSourceARN", "")) if records else ""
    if arn.count(":") != 5:
        return None
    url = queue_url(arn)
    return lambda account_id, reset_at: wake_up(url, account_id, reset_at)


@dataclass
class Runtime:
    """Everything built once per container and reused by warm invocations."""

    settings: Settings
    dynamodb: Any
    run_once: Callable[..., dict[str, Any]]
    idempotency: IdempotencyConfig
    sqs: Callable[[], Any]  # made on first use: only webhook delivery's wake-ups need it


@functools.cache
def runtime() -> Runtime:
    settings = Settings.from_env()
    dynamodb = boto3.client("dynamodb")
    idempotency = IdempotencyConfig(expires_after_seconds=IDEMPOTENCY_TTL_SECONDS)
    store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)

    def _run(slot: dict[str, str], context: LambdaContext) -> dict[str, Any]:
        # The kind is part of the idempotency key: a digest and a run may share a time.
        if slot.get("kind") == "digest":
            return _run_digest(settings, dynamodb, slot["slot"])
        return _run_cycle(settings, dynamodb, slot["slot"], context)

    run_once = idempotent_function(data_keyword_argument="slot", persistence_store=store, config=idempotency)(_run)
    return Runtime(settings, dynamodb, run_once, idempotency, functools.cache(lambda: boto3.client("sqs")))


def load_credentials(secret_id: str, *, force_fetch: bool = False) -> Any:
    try:
        secret = parameters.get_secret(secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch)
    except parameters.exceptions.TransformParameterError:
        raise CredentialsMissing(f"The X credentials secret {secret_id!r} is not valid JSON") from None
    except parameters.exceptions.GetParameterError as exc:
        raise CredentialsMissing(
            f"The X credentials secret {secret_id!r} could not be read: {type(exc.__cause__).__name__ if exc.__cause__ else 'error'}"
        ) from None
    return secret  # shape checked by XAccount, which names missing keys but never values


def x_credentials(settings: Settings, dynamodb: Any) -> Any:
    """The credentials for this run: OAuth 1.0a as stored, or OAuth 2.0 with an access token
    good for the whole run (refreshed, and the rotated tokens stored, first if need be)."""
    secret = load_credentials(settings.credentials_secret_id)
    if not is_oauth2(secret):
        return secret
    if settings.x_auth_type == "oauth1":
        # The role may not write the secret (template: PutSecretValue only with XAuthType=oauth2), so a
        # refresh would spend the refresh token and lose its successor. Stop before spending anything.
        raise ConfigurationError(
            "The X credentials secret holds OAuth 2.0 tokens, but the stack was deployed with XAuthType=oauth1 "
            "(X_AUTH_TYPE), so the function may not store rotated tokens. Redeploy with XAuthType=oauth2"
        )
    secret_id = settings.credentials_secret_id
    keeper = TokenKeeper(
        # Always the stored value: another container may have rotated the tokens since.
        read=lambda: load_credentials(secret_id, force_fetch=True),
        write=lambda value: _store_secret(secret_id, value),
        refresh=lambda tokens: refresh_oauth2_tokens(tokens, base_url=settings.x_api_base_url, now=clock().timestamp()),
        lease=LedgerLease(Ledger(dynamodb, settings.ledger_table)),
        now=lambda: clock().timestamp(),
    )
    return keeper.fresh().as_secret()


def _store_secret(secret_id: str, value: dict[str, Any]) -> None:
    client = boto3.client("secretsmanager", config=SECRET_WRITE_CONFIG)  # honours AWS_ENDPOINT_URL
    client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))


def _run_cycle(settings: Settings, dynamodb: Any, slot: str, context: LambdaContext) -> dict[str, Any]:
    try:
        credentials = x_credentials(settings, dynamodb)
    except (XUnavailable, TokenRefreshInProgress) as exc:
        # X's token endpoint is down, or another process is refreshing: ordinary, not a
        # person's problem. This slot does nothing; the next one carries on.
        logger.warning("Run skipped: no usable X token yet", extra={"reason": type(exc).__name__, "detail": str(exc)})
        return {"slot": slot, "skipped_run": True, "reason": str(exc)}
    x = XAccount(credentials, base_url=settings.x_api_base_url, clock=lambda: clock().timestamp())  # X's windows on the run's clock
    ledger = Ledger(dynamodb, settings.ledger_table)
    cycle = WelcomeCycle(
        x=x,
        ledger=ledger,
        settings=settings,
        now=lambda: clock(),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        run_id=f"{slot}/{getattr(context, 'aws_request_id', 'local')}",
        sleep=lambda seconds: sleep(seconds),
    )
    summary = cycle.run().as_dict()
    summary["slot"] = slot
    summary["ledger_reads"], summary["ledger_writes"] = ledger.reads, ledger.writes
    _publish_metrics(summary)
    logger.info("Run summary", extra={"summary": summary})
    return summary


def _run_digest(settings: Settings, dynamodb: Any, slot: str) -> dict[str, Any]:
    if not policy_for(settings.welcome_mode).digests:
        # The digest schedule is only enabled in digest mode; a stray or replayed event does nothing.
        logger.info("Digest event ignored: not in digest mode", extra={"mode": settings.welcome_mode})
        return {"slot": slot, "skipped_run": True, "reason": f"WELCOME_MODE is {settings.welcome_mode}, not digest"}
    sns = boto3.client("sns", config=DIGEST_PUBLISH_CONFIG)  # honours AWS_ENDPOINT_URL

    def publish(subject: str, message: str) -> None:
        try:
            sns.publish(TopicArn=settings.digest_topic_arn, Subject=subject, Message=message)
        except BotocoreConnectionError as exc:
            # Never connected (refused, connect timeout, TLS, proxy): not published.
            raise DigestNotPublished(f"SNS could not be reached ({type(exc).__name__})") from None
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = str(exc.response.get("Error", {}).get("Code", "Error"))[:60]
            if status >= 500:
                # SNS failed while handling it: the message may have gone out anyway.
                raise DigestMaybePublished(f"SNS answered {status} {code}") from None
            # Refused before sending (AuthorizationError, NotFound, InvalidParameter, throttled): not published.
            raise DigestNotPublished(f"SNS refused the digest ({code})") from None
        except HTTPClientError as exc:
            # The request left and no answer came (read timeout, dropped connection): maybe published.
            raise DigestMaybePublished(f"no answer from SNS ({type(exc).__name__})") from None
        except BotoCoreError as exc:
            # Failed before sending (no credentials, a bad parameter): not published.
            raise DigestNotPublished(f"SNS did not take the digest ({type(exc).__name__})") from None

    digest = Digest(
        ledger=Ledger(dynamodb, settings.ledger_table), settings=settings, publish=publish, now=clock, digest_id=f"digest/{slot}"
    )
    summary = digest.run().as_dict()
    summary["slot"] = slot
    metrics.add_metric(name="DigestFollowersListed", unit=MetricUnit.Count, value=summary["listed"])
    logger.info("Digest summary", extra={"summary": summary})
    # A digest that may or may not be out ends cleanly: the idempotency record keeps a redelivery of
    # this slot from publishing it again, and the next digest lists its followers again, marked.
    if summary["not_published"]:
        raise DigestNotPublished(summary["notes"][-1])  # fail the run: the errors alarm tells a person
    return summary


def _publish_metrics(summary: dict[str, Any]) -> None:
    metrics.add_metric(name="FollowersRead", unit=MetricUnit.Count, value=summary["followers_read"])
    # Billed per user like follower reads: asking X whether queued followers still follow.
    metrics.add_metric(name="UsersLookedUp", unit=MetricUnit.Count, value=summary.get("presence_lookups", 0))
    metrics.add_metric(name="NewFollowers", unit=MetricUnit.Count, value=summary["new_followers"])
    metrics.add_metric(name="WelcomesSent", unit=MetricUnit.Count, value=summary["welcomed"])
    metrics.add_metric(name="WelcomesSkipped", unit=MetricUnit.Count, value=summary["skipped"])
    metrics.add_metric(name="WelcomeFailures", unit=MetricUnit.Count, value=summary["failed"])
    metrics.add_metric(name="PendingBacklog", unit=MetricUnit.Count, value=summary["pending"])
    # Only sends that can still be settled: one too old to check must not hold an alarm on for ever.
    metrics.add_metric(name="UncertainSends", unit=MetricUnit.Count, value=summary["uncertain"] - summary["uncertain_expired"])
    metrics.add_metric(name="UncertainExpired", unit=MetricUnit.Count, value=summary["uncertain_expired"])
    metrics.add_metric(name="ReconciledSends", unit=MetricUnit.Count, value=summary["reconciled_welcomed"] + summary["reconciled_released"])
    metrics.add_metric(name="FollowersDeparted", unit=MetricUnit.Count, value=summary["departed"])
    metrics.add_metric(name="RateLimitedRuns", unit=MetricUnit.Count, value=int(summary["rate_limited"]))
    # X refused several recipients in the same way: a problem of the account or the app, not of them.
    metrics.add_metric(name="SendingRefusedRuns", unit=MetricUnit.Count, value=int(bool(summary.get("account_refused", False))))
    if int(summary.get("account_refused_runs", 0) or 0) >= ACCOUNT_REFUSED_RUNS_FOR_A_PERSON:
        # It persists: a person must look (the credentials-or-permission alarm). The run itself ends cleanly.
        logger.error(
            "Sending refused by X run after run: a person needs to act",
            extra={"reason": "SendingRefused", "runs": summary.get("account_refused_runs")},
        )
        _single_metric("PersonNeeded", 1, "SendingRefused")
    if policy_for(summary["mode"]).reads_inbox:
        metrics.add_metric(name="DmEventsRead", unit=MetricUnit.Count, value=summary["dm_events_read"])
        metrics.add_metric(name="RepliesDue", unit=MetricUnit.Count, value=summary["replies_due"])
    metrics.add_metric(name="OptOuts", unit=MetricUnit.Count, value=summary["opted_out"])
    metrics.add_metric(name="OptOutConfirmations", unit=MetricUnit.Count, value=summary["confirmations_sent"])
    for reason, count in summary["skipped_by_reason"].items():
        _single_metric("FollowersSkipped", count, reason)


def _single_metric(name: str, value: int, reason: str) -> None:
    """A metric with its own Reason dimension, beside the run's metrics."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="Reason", value=reason)


def is_event_batch(event: Any) -> bool:
    """An SQS batch of X's webhook events (webhook delivery), not a schedule event."""
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def _run_events(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Webhook events, handled by this same function: its reserved concurrency of 1 means they never
    overlap a scheduled run (they share claims, the daily count and the meta item)."""
    rt = runtime()
    logger.set_correlation_id(f"events/{getattr(context, 'aws_request_id', 'local')}")
    started = time.monotonic()
    try:
        # X's token endpoint down or another process refreshing: raised, so SQS delivers the batch again.
        x = XAccount(x_credentials(rt.settings, rt.dynamodb), base_url=rt.settings.x_api_base_url, clock=lambda: clock().timestamp())
        try:
            result = handle_events(
                event["Records"],
                x=x,
                ledger=Ledger(rt.dynamodb, rt.settings.ledger_table),
                settings=rt.settings,
                now=lambda: clock(),
                time_left=lambda: context.get_remaining_time_in_millis() / 1000,
                run_id=f"events/{getattr(context, 'aws_request_id', 'local')}",
                sleep=lambda seconds: sleep(seconds),
                wake_up=_wake_up_via(event["Records"]),
            )
        finally:
            x.close()
    except PersonNeeded as exc:
        logger.error("Webhook events failed: a person needs to act", extra={"reason": type(exc).__name__, "detail": str(exc)})
        _single_metric("PersonNeeded", 1, type(exc).__name__)
        raise
    metrics.add_metric(name="WebhookEventsHandled", unit=MetricUnit.Count, value=result.events)
    metrics.add_metric(name="WebhookEventsFailed", unit=MetricUnit.Count, value=len(result.batch_item_failures))
    metrics.add_metric(name="NewFollowers", unit=MetricUnit.Count, value=result.new_followers)
    metrics.add_metric(name="WelcomesSent", unit=MetricUnit.Count, value=result.welcomed)
    logger.info("Webhook batch summary", extra={"summary": result.as_dict(), "seconds": round(time.monotonic() - started, 3)})
    return {"batchItemFailures": result.batch_item_failures}


# A webhook batch holds people's messages (dm.received): the event is never logged.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_event_batch(event):
        return _run_events(event, context)
    slot = schedule_slot(event)
    kind = "digest" if is_digest_event(event) else "run"
    logger.set_correlation_id(slot if kind == "run" else f"digest/{slot}")
    try:
        rt = runtime()
    except ConfigurationError as exc:
        logger.error("Run failed: a person needs to act", extra={"reason": "ConfigurationError", "detail": str(exc)})
        _single_metric("PersonNeeded", 1, "ConfigurationError")
        raise
    if rt.settings.x_api_other_host:
        # Allowed explicitly (X_API_ALLOW_OTHER_HOST), and said on every run: the credentials go there.
        logger.warning(
            "The X API base URL is not X's: the X credentials are sent to another host",
            extra={"x_api_host": rt.settings.x_api_origin},
        )
    rt.idempotency.register_lambda_context(context)
    started = time.monotonic()
    try:
        summary = rt.run_once(slot={"slot": slot, "kind": kind}, context=context)
    except IdempotencyAlreadyInProgressError:
        # Another delivery of this same slot is running right now: this one does nothing.
        logger.info("Duplicate delivery of a slot still running; nothing to do", extra={"slot": slot})
        return {"slot": slot, "duplicate": True}
    except PersonNeeded as exc:
        # Only failures a person must fix (errors.PersonNeeded) fail a run on purpose: an alarm
        # asks a person to fix them. Everything else ends a run cleanly.
        logger.error("Run failed: a person needs to act", extra={"reason": type(exc).__name__, "detail": str(exc)})
        _single_metric("PersonNeeded", 1, type(exc).__name__)
        raise
    tracer.put_annotation("slot", slot)
    logger.debug("Run finished", extra={"seconds": round(time.monotonic() - started, 3)})
    return summary
