"""`courtesy webhook setup|status|replay` against the X sandbox over HTTP (its Activity API sends a
real CRC GET to a receiver served by tools.local_url) and moto (the stack's outputs, secret, queue)."""

from __future__ import annotations

import json

import pytest

from courtesy_cli import webhook
from sandbox import XSandbox
from tests.cli.conftest import OUTPUTS, stack_template
from tests.integration.test_event_worker import sqs_record
from tools.local_aws import LOCAL_NAMES
from tools.local_url import LocalFunctionUrl, webhook_receiver

STACK = "with-webhook"


@pytest.fixture
def receiver(world):
    """The public receiver, served locally with the stack's consumer secret; events go to a list."""
    queued: list[dict] = []
    handler = webhook_receiver(lambda: world.x.credentials["consumer_secret"], queued.extend)
    with LocalFunctionUrl(handler) as url:
        url.queued = queued  # type: ignore[attr-defined]
        yield url


@pytest.fixture
def deployed(world, receiver, monkeypatch):
    """A stack with webhook delivery: WebhookUrl output and its event queue (a resource, as the template has it)."""
    template = json.loads(stack_template({**OUTPUTS, "WebhookUrl": receiver.url}))
    template["Resources"] = {"WebhookEventQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "courtesy-webhook-events"}}}
    world.aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    monkeypatch.setattr(webhook, "clock", world.x.now)
    return world


def cli(world, *args: str) -> tuple[int, str, str]:
    code, out, err = world.cli("--stack", STACK, "webhook", *args)
    secrets = [v for v in world.x.credentials.values() if isinstance(v, str) and len(v) > 8]
    for text in (out, err):
        assert not [s for s in secrets if s in text], "a credential was printed"
    return code, out, err


def test_setup_registers_validates_and_subscribes_once(deployed, receiver):
    x: XSandbox = deployed.x
    code, out, err = cli(deployed, "setup", "--x-api-base-url", x.base_url)
    assert code == 0, err
    assert "valid: yes" in out and "X validated the webhook" in out
    (hook,) = x.webhooks()
    assert hook["url"] == receiver.url and hook["valid"] is True
    assert [c["valid"] for c in x.crc_requests] == [True]  # the CRC GET reached the local receiver
    assert any(event["rawQueryString"].startswith("crc_token=") for event, _ in receiver.requests)
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url, "--json")
    assert code == 0, err
    first = json.loads(out)["subscriptions"]
    assert sorted(s["event_type"] for s in first) == sorted(webhook.EVENT_TYPES)
    assert {s["user_id"] for s in first} == {x.account_id} and {s["webhook_id"] for s in first} == {hook["id"]}

    code, out, err = cli(deployed, "setup", "--x-api-base-url", x.base_url)  # again: re-validates, creates nothing
    assert code == 0, err
    assert "already registered" in out and out.count("already subscribed") == 3
    assert len(x.webhooks()) == 1 and len(x.crc_requests) == 2
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url, "--json")
    assert json.loads(out)["subscriptions"] == first


def test_status_shows_valid_subscriptions_and_queue_depth(deployed, receiver):
    x = deployed.x
    assert cli(deployed, "setup", "--x-api-base-url", x.base_url)[0] == 0
    sqs = deployed.aws.client("sqs")
    queue = sqs.get_queue_url(QueueName="courtesy-webhook-events")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="{}")
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url, "--json")
    assert code == 0, err
    report = json.loads(out)
    (hook,) = report["webhooks"]
    assert hook["valid"] is True and hook["this_stack"] is True and hook["created_at"]
    assert report["missing_subscriptions"] == []
    assert report["queue"] == {"waiting": 1, "in_flight": 0}

    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url)
    assert code == 0, err
    assert "Webhooks (1)" in out and "yes" in out and "Subscriptions (3)" in out
    for event_type in webhook.EVENT_TYPES:
        assert event_type in out
    assert "Event queue: 1 waiting" in out


def test_status_shows_the_last_events_the_worker_handled(deployed, receiver):
    x = deployed.x
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url)
    assert code == 0 and "Events received: none handled yet." in out
    assert cli(deployed, "setup", "--x-api-base-url", x.base_url)[0] == 0
    deployed.run()  # the baseline
    fan = x.add_follower()
    x.remove_follower(fan["id"])
    x.deliver_events()
    assert [m["event_type"] for m in receiver.queued] == ["follow.follow", "follow.unfollow"]
    deployed.stack.function.invoke({"Records": [sqs_record(i, m) for i, m in enumerate(receiver.queued)]})
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url, "--json")
    events = json.loads(out)["recent_events"]["events"]
    assert [(e["event_type"], e["outcome"]) for e in events] == [("follow.unfollow", "handled"), ("follow.follow", "handled")]
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url)
    assert "Last events handled" in out and "follow.unfollow" in out
    assert fan["username"] not in out  # an event's type and outcome, never who


def test_setup_reports_a_webhook_x_could_not_validate(deployed, receiver):
    x = deployed.x
    # The receiver holds another consumer secret than the app's: its CRC answer is wrong.
    receiver.handler = webhook_receiver(lambda: "an-older-consumer-secret", receiver.queued.extend)  # type: ignore[attr-defined]
    code, out, err = cli(deployed, "setup", "--x-api-base-url", x.base_url)
    assert code == 1
    assert "valid: no" in out and "X could not validate the webhook" in err
    assert [w["valid"] for w in x.webhooks()] == [False]
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url)
    assert code == 0 and "An invalid webhook gets no events" in out


def test_replay_refuses_more_than_24_hours_and_starts_a_job_otherwise(deployed, receiver):
    x = deployed.x
    assert cli(deployed, "setup", "--x-api-base-url", x.base_url)[0] == 0
    for since in ("25h", "2d", "1441m"):
        code, out, err = cli(deployed, "replay", "--since", since, "--x-api-base-url", x.base_url)
        assert code == 2 and "more than 24 hours" in err, (since, err)
    code, out, err = cli(deployed, "replay", "--since", "nonsense", "--x-api-base-url", x.base_url)
    assert code == 2 and "--since" in err

    x.add_followers(1, prefix="late")
    x.deliver_events()
    assert len(receiver.queued) == 1  # type: ignore[attr-defined]
    for since in ("2h", "24h"):
        code, out, err = cli(deployed, "replay", "--since", since, "--x-api-base-url", x.base_url)
        assert code == 0, err
        assert "Replay job" in out
    assert x.pending_events() == 2  # each job re-delivers the one event delivered in its window
    x.deliver_events()
    assert all(a["replay"] for a in x.webhook_deliveries[1:]) and len(receiver.queued) >= 2  # type: ignore[attr-defined]


def test_x_errors_are_named_without_secrets(deployed, receiver):
    x = deployed.x
    secrets = deployed.aws.client("secretsmanager")
    creds = dict(x.credentials, bearer_token="not-the-app-bearer-token")  # noqa: S106
    secrets.put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps(creds))
    code, out, err = cli(deployed, "status", "--x-api-base-url", x.base_url)
    assert code == 2 and "X answered 401 (Unauthorized)" in err and "bearer_token" in err
    assert "not-the-app-bearer-token" not in out + err

    creds.pop("bearer_token")
    secrets.put_secret_value(SecretId=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps(creds))
    code, out, err = cli(deployed, "setup", "--x-api-base-url", x.base_url)
    assert code == 2 and "has no bearer_token" in err


def test_setup_needs_a_url_and_other_hosts_need_opting_in(world, monkeypatch):
    code, out, err = world.cli("webhook", "setup", "--x-api-base-url", world.x.base_url)
    assert code == 2 and "WebhookUrl" in err and "--url" in err
    monkeypatch.setenv("X_API_BASE_URL", world.x.base_url)
    code, out, err = world.cli("webhook", "status")
    assert code == 2 and "X_API_ALLOW_OTHER_HOST" in err
