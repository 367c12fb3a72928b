"""Webhook delivery end to end: the sandbox's X Activity API POSTs signed events to the public
receiver (courtesy.webhook_receiver, served as a Function URL by tools.local_url, with the stack's
consumer secret), which queues them on SQS (moto); the real handler then takes them as an SQS batch,
as the event source mapping would hand them over. Welcomes are counted from the sandbox's DM log."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from courtesy_cli.webhook import EVENT_TYPES, ActivityApi
from tools.local_queue import QueuePump
from tools.local_url import LocalFunctionUrl, stack_receiver


class Delivery:
    """The receiver on a local URL, its queue, and the real handler fed from the queue in SQS batches
    (tools.local_queue, by hand here: no batching window)."""

    def __init__(self, stack, url: LocalFunctionUrl, pump: QueuePump):
        self.stack, self.url, self.pump = stack, url, pump

    def messages(self) -> list[dict[str, Any]]:
        """Everything in the queue (received, so invisible until deleted)."""
        return self.pump.messages()

    def handle(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One SQS batch through the real handler; deletes what it handled, as Lambda's SQS poller does."""
        return self.pump.handle(messages)


@pytest.fixture
def delivery(stack):
    queue_url = stack.aws.create_webhook_queues()
    with stack_receiver(stack.aws, queue_url) as url:
        api = ActivityApi(stack.x.credentials, stack.x.base_url)
        try:
            hook = api.call("POST", "/2/webhooks", "registering", body={"url": url.url})["data"]
            assert hook["valid"] is True  # the sandbox's CRC GET reached the receiver
            for event_type in EVENT_TYPES:
                body = {"event_type": event_type, "filter": {"user_id": stack.x.account_id}, "tag": "courtesy", "webhook_id": hook["id"]}
                api.call("POST", "/2/activity/subscriptions", "subscribing", user=True, body=body)
        finally:
            api.close()
        yield Delivery(stack, url, QueuePump(stack.aws.client("sqs"), queue_url, stack.function.invoke))


def test_a_new_follower_is_welcomed_once_through_the_webhook(stack, delivery):
    stack.run()  # the baseline: who already follows is never welcomed
    assert stack.welcomes_per_follower() == {}
    (fan,) = stack.x.add_followers(1, prefix="hooked")
    attempts = stack.x.deliver_events()
    assert [(a["event_type"], a["status"]) for a in attempts] == [("follow.follow", 200)]
    messages = delivery.messages()
    assert len(messages) == 1 and json.loads(messages[0]["Body"])["event_uuid"] == attempts[0]["event_uuid"]

    assert delivery.handle(messages) == {"batchItemFailures": []}
    assert stack.welcomes_per_follower() == {fan["id"]: 1}
    assert delivery.messages() == []

    stack.run()  # the next scheduled run finds the follower already welcomed
    assert stack.welcomes_per_follower() == {fan["id"]: 1}


def test_a_duplicated_delivery_still_welcomes_once(stack, delivery):
    stack.run()
    stack.x.duplicate_next_events(1)
    (fan,) = stack.x.add_followers(1, prefix="twice")
    attempts = stack.x.deliver_events()
    assert len(attempts) == 2 and len({a["event_uuid"] for a in attempts}) == 1 and all(a["status"] == 200 for a in attempts)
    first, second = delivery.messages()
    assert delivery.handle([first]) == {"batchItemFailures": []}
    assert delivery.handle([second]) == {"batchItemFailures": []}  # a later batch with the same event_uuid
    assert stack.welcomes_per_follower() == {fan["id"]: 1}

    # The same event twice in one batch (a replay racing the original) is one welcome too.
    stack.x.duplicate_next_events(1)
    (other,) = stack.x.add_followers(1, prefix="again")
    stack.x.deliver_events()
    both = delivery.messages()
    assert len(both) == 2
    assert delivery.handle(both) == {"batchItemFailures": []}
    assert stack.welcomes_per_follower() == {fan["id"]: 1, other["id"]: 1}


def test_an_unsigned_request_is_refused_and_queues_nothing(stack, delivery):
    body = json.dumps(
        {"data": {"event_uuid": "1", "filter": {"user_id": stack.x.account_id}, "event_type": "follow.follow", "payload": {}}}
    )
    answer = requests.post(delivery.url.url, data=body, headers={"content-type": "application/json"}, timeout=10)
    assert answer.status_code == 401
    bad = requests.post(delivery.url.url, data=body, headers={"x-twitter-webhooks-signature": "sha256=AAAA"}, timeout=10)
    assert bad.status_code == 401
    assert requests.get(delivery.url.url, timeout=10).status_code == 400  # a GET without crc_token
    assert delivery.messages() == []
    assert stack.welcomes_per_follower() == {}
