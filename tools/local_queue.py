"""An SQS queue feeding a function on this machine, as a Lambda SQS event source mapping does.

    pump = QueuePump(sqs, queue_url, invoke)        # invoke(event) -> the function's answer
    pump.handle(pump.messages())                    # one batch, by hand (tests)
    pump.run_until(lambda: done(), timeout=30)      # poll, gather a batch, invoke, until done

Each batch reaches the function as Lambda's SQS poller hands it over: an event whose Records
(eventSource "aws:sqs") carry the messages. The function reports partial batch failures
(ReportBatchItemFailures): the messages its answer names in batchItemFailures stay on the queue,
to come back after the visibility timeout; the others are deleted. `batch_size` and
`batching_window` are the mapping's BatchSize and MaximumBatchingWindowInSeconds (see
`mapping_settings`, which reads them from template.yaml): a batch is handed over once it is
full, or `batching_window` seconds after its first message, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
MAPPING = "WebhookEventSourceMapping"
SQS_MAX_RECEIVE = 10  # ReceiveMessage returns at most 10 messages


def mapping_settings(template: dict[str, Any], mapping: str = MAPPING) -> dict[str, Any]:
    """The template's event source mapping as QueuePump arguments: batch_size, batching_window."""
    props = template["Resources"][mapping]["Properties"]
    return {"batch_size": int(props.get("BatchSize", 10)), "batching_window": float(props.get("MaximumBatchingWindowInSeconds", 0))}


class QueuePump:
    """Reads `queue_url` and invokes the function with SQS batches; `answers` keeps every answer."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        *,
        batch_size: int = 10,
        batching_window: float = 0.0,
        poll_interval: float = 0.05,
        region: str = "us-east-1",
    ):
        self.sqs, self.queue_url, self.invoke = sqs, queue_url, invoke
        self.batch_size, self.batching_window, self.poll_interval, self.region = batch_size, batching_window, poll_interval, region
        self.answers: list[dict[str, Any]] = []
        self._arn = ""

    @property
    def queue_arn(self) -> str:
        if not self._arn:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
            self._arn = attributes["QueueArn"]
        return self._arn

    def depth(self) -> int:
        """Messages waiting plus those received and not yet deleted (in flight)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def receive(self, count: int, *, visibility_timeout: int | None = None) -> list[dict[str, Any]]:
        """Up to `count` messages now (no long poll), invisible to others until deleted or timed out."""
        out: list[dict[str, Any]] = []
        extra = {} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}
        while len(out) < count:
            want = min(SQS_MAX_RECEIVE, count - len(out))
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=want, AttributeNames=["All"], **extra)
            if not answer.get("Messages"):
                break
            out.extend(answer["Messages"])
        return out

    def messages(self) -> list[dict[str, Any]]:
        """Everything in the queue now (received, so invisible for a minute unless deleted)."""
        out: list[dict[str, Any]] = []
        while batch := self.receive(SQS_MAX_RECEIVE, visibility_timeout=60):
            out.extend(batch)
        return out

    def gather(self) -> list[dict[str, Any]]:
        """One batch as the mapping gathers it: up to batch_size messages, waiting at most
        batching_window seconds after the first one for more. [] if the queue is empty."""
        batch = self.receive(self.batch_size)
        if not batch:
            return []
        deadline = time.monotonic() + self.batching_window
        while len(batch) < self.batch_size and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.poll_interval, left))
            batch.extend(self.receive(self.batch_size - len(batch)))
        return batch

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The SQS event Lambda's poller would pass the function for these messages."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes") or {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def handle(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch through the function; deletes what it did not report as failed, as the poller does."""
        answer = self.invoke(self.event(messages))
        self.answers.append(answer)
        failed = {f.get("itemIdentifier") for f in (answer or {}).get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return answer

    def run_until(self, done: Callable[[], bool], *, timeout: float = 30.0) -> int:
        """Poll, gather and hand over batches until `done()` (checked between batches); returns the
        number of batches. Raises TimeoutError if `done()` is still false after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        batches = 0
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done after {timeout} s ({batches} batches handed over)")
            batch = self.gather()
            if batch:
                self.handle(batch)
                batches += 1
            else:
                time.sleep(self.poll_interval)
        return batches
