"""The public webhook receiver: X's CRC answer, signatures over the raw body, and that every
refused request changes nothing, while a good delivery queues exactly its events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import io
import json
import logging
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from courtesy import webhook_receiver
from courtesy.errors import CredentialsMissing
from courtesy.observability import logger
from courtesy.webhook_receiver import MAX_BODY_BYTES, crc_response, parse_delivery, receive, signature_valid
from tools.local_run import LambdaContext

SECRET = "cs-WEBHOOK-LEAKCHECK-51ab"
DM_TEXT = "my private words WEBHOOK-DMTEXT-77e0"
ACCOUNT = "2244994945"


# --- Building X's requests -------------------------------------------------------------------------


def envelope(event_type: str, event_uuid: str = "-7953119945885597316", payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_uuid": event_uuid,
        "event_type": event_type,
        "filter": {"user_id": ACCOUNT},
        "tag": "courtesy",
        "payload": payload if payload is not None else {"source": {"data": {"id": "42"}}, "target": {"data": {"id": ACCOUNT}}},
    }


def dm_event(event_uuid: str = "1900000000000000001") -> dict[str, Any]:
    payload = {
        "direct_message_events": [
            {
                "type": "message_create",
                "id": "1",
                "created_timestamp": "1767225600000",
                "message_create": {"sender_id": "42", "target": {"recipient_id": ACCOUNT}, "message_data": {"text": DM_TEXT}},
            }
        ],
        "users": {"42": {"id": "42"}},
    }
    return envelope("dm.received", event_uuid, payload)


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post(body: bytes, signature: str | None = "sign", *, base64_encoded: bool = False, method: str = "POST") -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["x-twitter-webhooks-signature"] = signature
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode(),
        "isBase64Encoded": base64_encoded,
    }


def get(raw_query: str, method: str = "GET") -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": raw_query,
        "headers": {},
        "requestContext": {"http": {"method": method, "path": "/"}},
        "isBase64Encoded": False,
    }
    if raw_query:
        event["queryStringParameters"] = dict(part.split("=", 1) for part in raw_query.split("&"))
    return event


def delivery(*events: dict[str, Any]) -> bytes:
    data: Any = events[0] if len(events) == 1 else list(events)
    return json.dumps({"data": data}).encode()


class Queue:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, Any]]) -> None:
        self.calls.append(messages)


def call(event: dict[str, Any], queue: Queue) -> dict[str, Any]:
    return receive(event, consumer_secret=lambda: SECRET, enqueue=queue)


@pytest.fixture
def logged(capfd):
    """Everything the function's logger wrote (its JSON lines), plus stdout and stderr."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        yield lambda: stream.getvalue() + "".join(capfd.readouterr())
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)


# --- CRC ------------------------------------------------------------------------------------------


def test_crc_response_is_the_base64_hmac_sha256_of_the_token_under_the_consumer_secret():
    # Computed independently: HMAC-SHA256(key="secret", msg="challenge"), base64.
    expected = base64.b64encode(hmac.new(b"secret", b"challenge", hashlib.sha256).digest()).decode()
    assert expected == "oeUF6Wxqoezggrue+wbIDxKRPSF6esKwizR2MHh9HaA="  # a fixed point, so the test cannot drift with the code
    assert crc_response("secret", "challenge") == {"response_token": "sha256=" + expected}


def test_a_get_with_crc_token_is_answered_200_with_the_response_token():
    queue = Queue()
    response = call(get("crc_token=abc123"), queue)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    expected = base64.b64encode(hmac.new(SECRET.encode(), b"abc123", hashlib.sha256).digest()).decode()
    assert json.loads(response["body"]) == {"response_token": "sha256=" + expected}
    assert queue.calls == []


def test_the_crc_token_is_url_decoded():
    response = call(get("crc_token=a%2Bb%3D"), Queue())
    assert json.loads(response["body"]) == crc_response(SECRET, "a+b=")


# --- Signatures -----------------------------------------------------------------------------------


def test_signature_valid_only_for_exactly_these_bytes_and_this_secret():
    body = delivery(envelope("follow.follow"))
    assert signature_valid(SECRET, body, sign(body))
    assert not signature_valid(SECRET, body + b" ", sign(body))
    assert not signature_valid(SECRET, body, sign(body, "another secret"))
    assert not signature_valid(SECRET, body, None)
    assert not signature_valid(SECRET, body, "")
    assert not signature_valid(SECRET, body, sign(body).removeprefix("sha256="))
    assert not signature_valid(SECRET, body, "sha256=é")  # not ASCII: refused, not an error
    assert not signature_valid("", body, sign(body, ""))  # an empty secret proves nothing


# --- Every refusal changes nothing ----------------------------------------------------------------

GOOD = delivery(envelope("follow.follow"))
OTHER = delivery(envelope("follow.unfollow", "1111"))

REFUSED = {
    "no signature": (post(GOOD, None), 401),
    "wrong signature": (post(GOOD, sign(GOOD, "not the consumer secret")), 401),
    "tampered body, original signature": (post(GOOD.replace(b"follow.follow", b"follow.unfollow"), sign(GOOD)), 401),
    "a body re-sent with another request's signature": (post(GOOD, sign(OTHER)), 401),
    "signature of the base64 text, not the bytes": (post(GOOD, sign(base64.b64encode(GOOD)), base64_encoded=True), 401),
    "not JSON, validly signed": (post(b"not json {"), 400),
    "not UTF-8, validly signed": (post(b"\xff\xfe", base64_encoded=True), 400),
    "bad base64": ({**post(GOOD), "isBase64Encoded": True, "body": "%%%"}, 400),
    "JSON but no data": (post(b'{"events": []}'), 400),
    "data is an empty list": (post(b'{"data": []}'), 400),
    "data not an object": (post(b'{"data": "x"}'), 400),
    "no event_uuid": (post(delivery({k: v for k, v in envelope("follow.follow").items() if k != "event_uuid"})), 400),
    "event_uuid a float": (post(delivery(envelope("follow.follow", 1.5))), 400),  # type: ignore[arg-type]
    "no filter.user_id": (post(delivery({**envelope("follow.follow"), "filter": {}})), 400),
    "payload not an object": (post(delivery({**envelope("follow.follow"), "payload": "x"})), 400),
    "unknown event type": (post(delivery(envelope("tweet.create"))), 400),
    "unknown event type in a batch with good ones": (post(delivery(envelope("follow.follow"), envelope("dm.sent", "2"))), 400),
    "huge body, validly signed": (post(b'{"data": "' + b"x" * MAX_BODY_BYTES + b'"}'), 413),
    "huge body, base64": (post(b"x" * (MAX_BODY_BYTES + 1), base64_encoded=True), 413),
    "huge body, unsigned": (post(b"x" * (MAX_BODY_BYTES + 1), None), 413),
    "wrong method (PUT)": (post(GOOD, method="PUT"), 405),
    "wrong method (DELETE)": (get("", method="DELETE"), 405),
    "GET without crc_token": (get(""), 400),
    "GET with an empty crc_token": (get("crc_token="), 400),
    "GET with two crc_tokens": (get("crc_token=a&crc_token=b"), 400),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_request_is_refused_and_changes_nothing(case, logged):
    event, status = REFUSED[case]
    queue = Queue()
    response = call(event, queue)
    assert response["statusCode"] == status
    assert queue.calls == []
    assert "error" in json.loads(response["body"])
    said = logged()
    assert "Webhook request refused" in said  # so the checks below look at real log lines
    text = json.dumps(response) + said
    assert SECRET not in text
    assert sign(GOOD) not in text  # the signature is never echoed


def test_405_names_the_allowed_methods():
    assert call(get("", method="PATCH"), Queue())["headers"]["allow"] == "GET, POST"


def test_the_signature_is_checked_before_the_body_is_parsed(monkeypatch):
    def parse_should_not_run(raw_body: bytes):
        raise AssertionError("parsed an unsigned body")

    monkeypatch.setattr(webhook_receiver, "parse_delivery", parse_should_not_run)
    assert call(post(b"not json", None), Queue())["statusCode"] == 401


def test_the_secret_is_not_even_read_for_a_too_large_or_wrong_method_request():
    def no_secret() -> str:
        raise AssertionError("read the secret")

    for event in (post(b"x" * (MAX_BODY_BYTES + 1)), get("", method="PUT"), get("")):
        assert receive(event, consumer_secret=no_secret, enqueue=Queue())["statusCode"] in (400, 405, 413)


# --- Good deliveries ------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["follow.follow", "follow.unfollow", "oauth.revoke"])
def test_a_signed_delivery_of_each_event_type_queues_exactly_its_event(event_type):
    event = envelope(event_type)
    queue = Queue()
    response = call(post(delivery(event)), queue)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"queued": 1}
    assert queue.calls == [[event]]
    assert queue.calls[0][0]["event_uuid"] == "-7953119945885597316"  # kept as text, sign and all


def test_a_dm_received_delivery_queues_its_event_without_logging_its_text(logged):
    event = dm_event()
    queue = Queue()
    response = call(post(delivery(event)), queue)
    assert response["statusCode"] == 200
    assert queue.calls == [[event]]  # the worker gets the text...
    text = logged()
    assert "1900000000000000001" in text and "dm.received" in text  # ...the logs get the type and uuid
    assert DM_TEXT not in text and SECRET not in text
    assert DM_TEXT not in json.dumps(response)


def test_a_batched_delivery_queues_each_event_in_one_call():
    events = [envelope("follow.follow", "1"), dm_event("2"), envelope("follow.unfollow", "-3")]
    queue = Queue()
    response = call(post(delivery(*events)), queue)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"queued": 3}
    assert queue.calls == [events]


def test_a_numeric_event_uuid_is_queued_as_exact_text():
    body = b'{"data": {"event_uuid": -7953119945885597316, "event_type": "follow.follow", "filter": {"user_id": "1"}, "payload": {}}}'
    queue = Queue()
    assert call(post(body), queue)["statusCode"] == 200
    assert queue.calls[0][0]["event_uuid"] == "-7953119945885597316"
    assert [e.event_uuid for e in parse_delivery(body)] == ["-7953119945885597316"]


def test_a_base64_encoded_body_is_verified_over_the_decoded_bytes():
    body = delivery(envelope("follow.follow"))
    queue = Queue()
    response = call(post(body, sign(body), base64_encoded=True), queue)
    assert response["statusCode"] == 200
    assert queue.calls == [[envelope("follow.follow")]]


def test_a_body_of_exactly_the_limit_is_not_refused_for_size():
    body = b" " * (MAX_BODY_BYTES - len(GOOD)) + GOOD
    assert len(body) == MAX_BODY_BYTES
    queue = Queue()
    assert call(post(body), queue)["statusCode"] == 200
    assert len(queue.calls) == 1


def test_a_missing_secret_or_a_failing_queue_is_a_500_so_x_retries(logged):
    def missing() -> str:
        raise CredentialsMissing("The X credentials secret 'x' has no consumer_secret")

    def failing(messages: list[dict[str, Any]]) -> None:
        raise webhook_receiver.QueueUnavailable("SQS refused the batch (AccessDenied)")

    assert receive(post(GOOD), consumer_secret=missing, enqueue=Queue())["statusCode"] == 500
    assert receive(get("crc_token=a"), consumer_secret=missing, enqueue=Queue())["statusCode"] == 500
    assert receive(post(GOOD), consumer_secret=lambda: SECRET, enqueue=failing)["statusCode"] == 500
    assert SECRET not in logged()


# --- lambda_handler against moto's SQS and Secrets Manager --------------------------------------


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Courtesy",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        parameters.clear_caches()
        webhook_receiver._sqs.cache_clear()
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="courtesy-webhook-events")["QueueUrl"]
        secrets = boto3.client("secretsmanager")
        secret_id = secrets.create_secret(Name="courtesy-x-credentials", SecretString=json.dumps(credentials()))["ARN"]
        monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue_url)
        monkeypatch.setenv("X_CREDENTIALS_SECRET_ID", secret_id)
        yield sqs, queue_url, secrets, secret_id
    parameters.clear_caches()
    webhook_receiver._sqs.cache_clear()


def credentials() -> dict[str, str]:
    return {"consumer_key": "ck", "consumer_secret": SECRET, "access_token": "1-at", "access_token_secret": "ats"}


def queued(sqs, queue_url) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_lambda_handler_a_signed_follow_ends_as_one_sqs_message(aws, logged):
    sqs, queue_url, _, _ = aws
    event = envelope("follow.follow")
    response = webhook_receiver.lambda_handler(post(delivery(event)), LambdaContext())
    assert response["statusCode"] == 200
    assert queued(sqs, queue_url) == [event]
    text = logged()
    assert "Webhook delivery queued" in text and "WebhookEventsQueued" in text  # the log line and the metric
    assert SECRET not in text


def test_lambda_handler_answers_the_crc_with_the_stored_consumer_secret(aws):
    response = webhook_receiver.lambda_handler(get("crc_token=tok"), LambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == crc_response(SECRET, "tok")


def test_lambda_handler_queues_a_large_batch_in_chunks_of_ten(aws):
    sqs, queue_url, _, _ = aws
    events = [envelope("follow.follow", str(-i)) for i in range(23)]
    response = webhook_receiver.lambda_handler(post(delivery(*events)), LambdaContext())
    assert json.loads(response["body"]) == {"queued": 23}
    got: list[dict[str, Any]] = []
    for _ in range(10):
        got += queued(sqs, queue_url)
    assert sorted(e["event_uuid"] for e in got) == sorted(e["event_uuid"] for e in events)


@pytest.fixture
def log_event_asked_for(monkeypatch):
    """As an operator might: ask Powertools to log every event (read when the handler is decorated)."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    importlib.reload(webhook_receiver)
    yield
    monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
    importlib.reload(webhook_receiver)


def test_lambda_handler_never_logs_the_event_or_a_dm_text(aws, log_event_asked_for, logged):
    sqs, queue_url, _, _ = aws
    assert webhook_receiver.lambda_handler(post(delivery(dm_event())), LambdaContext())["statusCode"] == 200
    assert queued(sqs, queue_url) == [dm_event()]
    text = logged()
    assert DM_TEXT not in text and SECRET not in text and "x-twitter-webhooks-signature" not in text


def test_lambda_handler_a_secret_without_consumer_secret_is_a_500_naming_the_key_not_a_value(aws, logged):
    sqs, queue_url, secrets, secret_id = aws
    without = {k: v for k, v in credentials().items() if k != "consumer_secret"}
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(without))
    response = webhook_receiver.lambda_handler(post(GOOD), LambdaContext())
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"error": "temporarily unavailable"}
    assert queued(sqs, queue_url) == []
    text = logged()
    assert "has no consumer_secret" in text
    for value in credentials().values():
        assert value not in text


def test_lambda_handler_an_unreadable_secret_is_a_500(aws, monkeypatch, logged):
    monkeypatch.setenv("X_CREDENTIALS_SECRET_ID", "no-such-secret")
    response = webhook_receiver.lambda_handler(post(GOOD), LambdaContext())
    assert response["statusCode"] == 500
    assert "could not be read" in logged()


def test_lambda_handler_a_queue_that_does_not_take_the_events_is_a_500(aws, monkeypatch):
    sqs, queue_url, _, _ = aws
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue_url + "-gone")
    assert webhook_receiver.lambda_handler(post(GOOD), LambdaContext())["statusCode"] == 500


def test_lambda_handler_a_refused_request_queues_nothing(aws):
    sqs, queue_url, _, _ = aws
    assert webhook_receiver.lambda_handler(post(GOOD, sign(GOOD, "wrong")), LambdaContext())["statusCode"] == 401
    assert queued(sqs, queue_url) == []
