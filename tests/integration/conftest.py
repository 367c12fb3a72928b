"""Integration fixtures: the real handler, real tweepy over HTTP to the X sandbox, and
DynamoDB and Secrets Manager served by moto in server mode."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courtesy.digest import Digest
from courtesy.ledger import Ledger
from courtesy.settings import Settings
from courtesy.welcome_cycle import WelcomeCycle
from courtesy.x_account import XAccount
from sandbox import XSandbox
from tests.faults import FlakyDynamoDB
from tools.local_aws import LOCAL_NAMES, LocalAws
from tools.local_run import LambdaContext, LocalFunction, event_for_slot


@pytest.fixture
def x():
    with XSandbox() as sandbox:
        sandbox.add_followers(120, prefix="early")
        yield sandbox


class Stack:
    """One deployed-like stack: invoke it slot after slot and look into its ledger."""

    def __init__(self, aws: LocalAws, x: XSandbox):
        self.aws = aws
        self.x = x
        # Courtesy's clock follows the sandbox's, so tests can move time for both.
        self.function = LocalFunction(aws, x.base_url, clock=lambda: datetime.fromtimestamp(x.now(), UTC), DRY_RUN="false")
        self.slot = datetime(2026, 11, 26, 2, 15, tzinfo=UTC)

    def run(self, event: dict[str, Any] | None = None, *, context: LambdaContext | None = None, **env: str) -> dict[str, Any]:
        """One scheduled run at the next slot (or with the given event)."""
        if event is None:
            self.slot += timedelta(minutes=15)
            event = event_for_slot(self.slot)
        return self.function.invoke(event, context, **env)

    def ledger_items(self) -> dict[str, dict[str, str]]:
        items: dict[str, dict[str, str]] = {}
        kwargs: dict[str, Any] = {"TableName": LOCAL_NAMES["LedgerTable"]}
        client = self.aws.client("dynamodb")
        while True:
            page = client.scan(**kwargs)
            for item in page["Items"]:
                items[item["follower_id"]["S"]] = {k: next(iter(v.values())) for k, v in item.items()}
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def state_of(self, follower_id: str) -> str:
        return self.ledger_items()[follower_id]["state"]

    def welcomes_per_follower(self) -> dict[str, int]:
        """From the sandbox's own record of DMs, not from anything Courtesy counted."""
        counts: dict[str, int] = {}
        for dm in self.x.dm_log:
            counts[dm["recipient_id"]] = counts.get(dm["recipient_id"], 0) + 1
        return counts


@pytest.fixture
def stack(local_aws, x):
    local_aws.reset()
    local_aws.create_stack_resources(x.credentials)
    return Stack(local_aws, x)


@pytest.fixture
def log_lines():
    """The function's JSON log lines, captured from its own logger."""
    from courtesy.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


class CycleWorld:
    """The welcome cycle with its real adapters (tweepy over HTTP to the sandbox, the ledger on
    moto) and a clock that follows the sandbox's, so faults can be put between any two calls."""

    def __init__(self, aws: LocalAws, x: XSandbox):
        self.aws, self.x = aws, x
        self.dynamodb = FlakyDynamoDB(aws.client("dynamodb"))
        self.stack = Stack(aws, x)  # for looking into the ledger and the DM log
        self.runs = 0
        self.digests: list[str] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.x.now(), UTC)

    def run(self, *, wrap_x=None, wrap_ledger=None, time_left: float = 300.0, advance_minutes: float = 15, **env: str):
        settings = Settings.from_env({**BASE_ENV, **{k.upper(): str(v) for k, v in env.items()}})
        x_account = XAccount(self.x.credentials, base_url=self.x.base_url, clock=self.x.now)
        ledger = Ledger(self.dynamodb, LOCAL_NAMES["LedgerTable"], sleep=lambda _: None)
        self.runs += 1
        cycle = WelcomeCycle(
            x=wrap_x(x_account) if wrap_x else x_account,
            ledger=wrap_ledger(ledger) if wrap_ledger else ledger,
            settings=settings,
            now=self.now,
            time_left=lambda: time_left,
            run_id=f"run-{self.runs}",
            sleep=self.x.advance,  # a wait for X's DM window passes on the sandbox's clock
        )
        try:
            return cycle.run()
        finally:
            x_account.close()
            self.x.advance(advance_minutes * 60)

    def run_digest(self, *, wrap_ledger=None, wrap_publish=None, **env: str):
        """One daily digest; what it publishes lands in ``digests`` (the operator's inbox)."""
        settings = Settings.from_env({**BASE_ENV, "WELCOME_MODE": "digest", **{k.upper(): str(v) for k, v in env.items()}})
        ledger = Ledger(self.dynamodb, LOCAL_NAMES["LedgerTable"], sleep=lambda _: None)
        self.runs += 1

        def publish(subject: str, body: str) -> None:
            self.digests.append(body)

        digest = Digest(
            ledger=wrap_ledger(ledger) if wrap_ledger else ledger,
            settings=settings,
            publish=wrap_publish(publish) if wrap_publish else publish,
            now=self.now,
            digest_id=f"digest-{self.runs}",
        )
        return digest.run()

    def states(self) -> dict[str, str]:
        return {
            k: v["state"] for k, v in self.stack.ledger_items().items() if not k.startswith("#")
        }  # followers only: not the meta item, leases or event records

    def dms_per_follower(self) -> dict[str, int]:
        return self.stack.welcomes_per_follower()


BASE_ENV = {
    "LEDGER_TABLE_NAME": LOCAL_NAMES["LedgerTable"],
    "IDEMPOTENCY_TABLE_NAME": LOCAL_NAMES["IdempotencyTable"],
    "X_CREDENTIALS_SECRET_ID": LOCAL_NAMES["XCredentialsSecret"],
    "DRY_RUN": "false",
    "DIGEST_TOPIC_ARN": LOCAL_NAMES["AlarmTopic"],
}


@pytest.fixture
def world(local_aws, x):
    local_aws.reset()
    local_aws.create_stack_resources(x.credentials)
    return CycleWorld(local_aws, x)


class Inbox:
    """What the topic delivered: an SQS queue subscribed to it, as an e-mail subscription would be."""

    def __init__(self, stack):
        self.sqs = stack.aws.client("sqs")
        self.url = self.sqs.create_queue(QueueName="digest-inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.aws.client("sns").subscribe(TopicArn=LOCAL_NAMES["AlarmTopic"], Protocol="sqs", Endpoint=arn)

    def messages(self) -> list[dict]:
        out = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
            if not answer.get("Messages"):
                return out
            for message in answer["Messages"]:
                envelope = json.loads(message["Body"])
                out.append({"subject": envelope.get("Subject", ""), "body": envelope["Message"]})
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def inbox(stack):
    return Inbox(stack)


def digest_event(stack) -> dict:
    return {"source": "courtesy.digest", "scheduled_time": (stack.slot + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def listed_usernames(body: str) -> list[str]:
    """The followers a digest lists, in its order (from each entry's profile link)."""
    return re.findall(r"^\d+\. .*https://x\.com/(\w+)$", body, flags=re.M)
