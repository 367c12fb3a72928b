"""The public receiver of X's webhook (X Activity API events), run as a Lambda behind a Function URL.

It does as little as possible, quickly (X wants a 200 within 10 seconds): answer X's CRC
challenge, check that a delivery really comes from X (HMAC-SHA256 of the raw body with the
app's consumer secret), check its envelope, and put each event on an SQS queue, one message
per event. Acting on the events, and deduplicating them by event_uuid (X may deliver an event
more than once, and retries whatever we refuse with a 5xx), is the worker's job.

Anything refused is refused whole and has no other effect: nothing is queued. Nothing here ever
logs or answers with the consumer secret, a signature, or an event's payload (a dm.received
payload holds the follower's own words): logs name only event types, event_uuids and counts.

Status codes:
    GET  with crc_token                      200 {"response_token": "sha256=…"}
    GET  without crc_token                   400
    POST body over MAX_BODY_BYTES            413
    POST without a valid signature           401  (checked over the raw bytes, before any parsing)
    POST not JSON, or a malformed envelope   400
    POST with an event type not handled      400  (the whole delivery is refused, see parse_delivery)
    POST accepted, every event queued        200
    any other method                         405
    secret or queue unavailable              500  (X retries later)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from courtesy.domain import ActivityEvent, activity_event
from courtesy.errors import CourtesyError, CredentialsMissing
from courtesy.observability import logger, metrics, tracer

# The event types Courtesy subscribes to (X Activity API). Anything else is refused: see parse_delivery.
EVENT_TYPES = frozenset({"follow.follow", "follow.unfollow", "dm.received", "oauth.revoke"})
# 256 KiB: an SQS queue's default MaximumMessageSize, and the limit on a whole SendMessageBatch
# at that setting (Amazon SQS quotas, "Message size"). Each event becomes one message, so no
# delivery we accept can be too big to queue; real deliveries are a few KB.
MAX_BODY_BYTES = 256 * 1024
# SendMessageBatch takes at most 10 entries (Amazon SQS quotas).
SQS_BATCH_ENTRIES = 10
SIGNATURE_HEADER = "x-twitter-webhooks-signature"
# Credentials are re-read at most this often, so a rotated secret is picked up without a redeploy (as app.py).
SECRET_MAX_AGE_SECONDS = 300
# X gives us 10 seconds for the whole answer: SQS gets a short leash and one retry.
SQS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2})

JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


class QueueUnavailable(CourtesyError):
    """SQS did not take every event: the delivery is answered 500 so X sends it again."""


class Refused(CourtesyError):
    """A request we will not act on. The reason is ours (fixed text), never the request's content."""

    def __init__(self, status: int, reason: str, **log: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.log = log  # safe to log: an event type or uuid, never content


# --- Pure functions ------------------------------------------------------------------------------


def _hmac_b64(consumer_secret: str, message: bytes) -> str:
    digest = hmac.new(consumer_secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def crc_response(consumer_secret: str, crc_token: str) -> dict[str, str]:
    """X's challenge-response check: proves we hold the app's consumer secret."""
    if not consumer_secret:
        raise ValueError("consumer_secret is empty")
    return {"response_token": "sha256=" + _hmac_b64(consumer_secret, crc_token.encode("utf-8"))}


def signature_valid(consumer_secret: str, raw_body: bytes, header: str | None) -> bool:
    """Whether `header` is X's signature of exactly these bytes ("sha256=<base64 HMAC-SHA256>")."""
    if not consumer_secret or not isinstance(header, str) or not header:
        return False
    expected = ("sha256=" + _hmac_b64(consumer_secret, raw_body)).encode("ascii")
    # Constant time: a byte-by-byte comparison would tell an attacker how much of a guess is right.
    return hmac.compare_digest(expected, header.strip().encode("utf-8", errors="replace"))


def parse_delivery(raw_body: bytes) -> list[ActivityEvent]:
    """The events of one signed delivery, or Refused(400).

    `data` is one event object or, should X batch them, a non-empty list of them. An event type
    we do not handle refuses the whole delivery (not just that event): we only subscribe to
    EVENT_TYPES, so another type means a subscription or a change at X that a person should see
    (a 400 in X's delivery log and our warning), and a delivery is never half-queued.
    """
    try:
        document = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body is not JSON") from None
    data = document.get("data") if isinstance(document, dict) else None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Refused(400, "delivery has no events")
    events = []
    for item in items:
        event = activity_event(item)
        if event is None:
            raise Refused(400, "malformed envelope")
        if event.event_type not in EVENT_TYPES:
            raise Refused(400, "unknown event type", event_type=event.event_type[:64], event_uuid=event.event_uuid[:64])
        events.append(event)
    return events


# --- The decision --------------------------------------------------------------------------------


def _response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})}, "body": json.dumps(body)}


def _crc_token(event: Mapping[str, Any]) -> str:
    raw_query = event.get("rawQueryString")
    if isinstance(raw_query, str):
        tokens = parse_qs(raw_query, keep_blank_values=True).get("crc_token", [])
    else:
        value = (event.get("queryStringParameters") or {}).get("crc_token")
        tokens = [value] if isinstance(value, str) else []
    if len(tokens) != 1 or not tokens[0]:
        raise Refused(400, "crc_token missing")
    return tokens[0]


def _raw_body(event: Mapping[str, Any]) -> bytes:
    """The body's bytes exactly as X signed them, refused if too big before any work on it."""
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise Refused(400, "malformed body")
    # Base64 is 4 characters per 3 bytes: anything longer than this cannot decode to an acceptable size.
    if len(body) > (MAX_BODY_BYTES + 2) // 3 * 4:
        raise Refused(413, "body too large")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "malformed body") from None
    else:
        raw = body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        raise Refused(413, "body too large")
    return raw


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if isinstance(key, str) and key.lower() == name:
            return value if isinstance(value, str) else None
    return None


def receive(
    event: Mapping[str, Any], *, consumer_secret: Callable[[], str], enqueue: Callable[[list[dict[str, Any]]], None]
) -> dict[str, Any]:
    """Answer one Function URL request (payload format 2.0). `consumer_secret` is only asked for
    once a request is worth checking; `enqueue` is only called with a whole, signed, valid delivery."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    try:
        if method == "GET":
            token = _crc_token(event)
            logger.info("Webhook CRC check answered")
            return _response(200, crc_response(consumer_secret(), token))
        if method != "POST":
            raise Refused(405, "method not allowed")
        raw = _raw_body(event)
        # Over the raw bytes and before parsing: nothing an unsigned body says is ever looked at.
        if not signature_valid(consumer_secret(), raw, _header(event, SIGNATURE_HEADER)):
            raise Refused(401, "invalid signature")
        events = parse_delivery(raw)
        enqueue([e.data for e in events])
    except Refused as refusal:
        logger.warning(
            "Webhook request refused", extra={"status": refusal.status, "reason": refusal.reason, "method": method[:10], **refusal.log}
        )
        headers = {"allow": "GET, POST"} if refusal.status == 405 else None
        return _response(refusal.status, {"error": refusal.reason}, headers)
    except (CredentialsMissing, QueueUnavailable) as exc:
        # The messages name the problem (secret id, missing key, SQS error code), never a value.
        logger.error("Webhook request failed: answered 500 so X retries", extra={"reason": type(exc).__name__, "detail": str(exc)})
        return _response(500, {"error": "temporarily unavailable"})
    logger.info(
        "Webhook delivery queued",
        extra={"count": len(events), "events": [{"event_type": e.event_type, "event_uuid": e.event_uuid} for e in events]},
    )
    return _response(200, {"queued": len(events)})


# --- Wiring: Secrets Manager and SQS -------------------------------------------------------------


def _env(name: str, missing: type[CourtesyError]) -> str:
    # Read here, not in courtesy.settings: this function has two settings, the welcome function's others.
    value = os.environ.get(name, "").strip()
    if not value:
        raise missing(f"{name} is not set")
    return value


def load_consumer_secret() -> str:
    """The app's consumer secret from the credentials secret (README, "Deploying")."""
    secret_id = _env("X_CREDENTIALS_SECRET_ID", CredentialsMissing)
    try:
        secret = parameters.get_secret(secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.TransformParameterError:
        raise CredentialsMissing(f"The X credentials secret {secret_id!r} is not valid JSON") from None
    except parameters.exceptions.GetParameterError as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "error"
        raise CredentialsMissing(f"The X credentials secret {secret_id!r} could not be read: {cause}") from None
    value = secret.get("consumer_secret") if isinstance(secret, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise CredentialsMissing(f"The X credentials secret {secret_id!r} has no consumer_secret")
    return value


@functools.cache
def _sqs() -> Any:
    return boto3.client("sqs", config=SQS_CONFIG)  # one per container; honours AWS_ENDPOINT_URL


def send_to_sqs(messages: list[dict[str, Any]]) -> None:
    """One SQS message per event, its body the event's JSON, in batches of 10.

    Any failure raises QueueUnavailable, so X gets a 500 and delivers the whole thing again.
    Messages already sent are then queued twice: the worker deduplicates by event_uuid.
    """
    queue_url = _env("WEBHOOK_QUEUE_URL", QueueUnavailable)
    for start in range(0, len(messages), SQS_BATCH_ENTRIES):
        chunk = messages[start : start + SQS_BATCH_ENTRIES]
        entries = [{"Id": str(i), "MessageBody": json.dumps(m, ensure_ascii=False, separators=(",", ":"))} for i, m in enumerate(chunk)]
        try:
            answer = _sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)
        except ClientError as exc:
            raise QueueUnavailable(f"SQS refused the batch ({str(exc.response.get('Error', {}).get('Code', 'Error'))[:60]})") from None
        except BotoCoreError as exc:
            raise QueueUnavailable(f"SQS could not be reached ({type(exc).__name__})") from None
        failed = answer.get("Failed") or []
        if failed:
            codes = sorted({str(f.get("Code", "?"))[:60] for f in failed})
            raise QueueUnavailable(f"SQS did not take {len(failed)} of {len(entries)} messages ({', '.join(codes)})")


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event's body may hold a DM's text.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    queued = 0

    def enqueue(messages: list[dict[str, Any]]) -> None:
        nonlocal queued
        send_to_sqs(messages)
        queued = len(messages)

    response = receive(event, consumer_secret=load_consumer_secret, enqueue=enqueue)
    status = response["statusCode"]
    metrics.add_metric(name="WebhookEventsQueued", unit=MetricUnit.Count, value=queued)
    metrics.add_metric(name="WebhookRequestsRefused", unit=MetricUnit.Count, value=int(400 <= status < 500))
    metrics.add_metric(name="WebhookRequestsFailed", unit=MetricUnit.Count, value=int(status >= 500))
    return response
