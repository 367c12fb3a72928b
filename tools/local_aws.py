"""A local AWS for the demo and the tests: DynamoDB, Secrets Manager, SNS and SQS served by
moto in server mode over HTTP, with the tables, the secret and the alarm topic (where
digest mode publishes) made from template.yaml, and on request the webhook event queues.

The function's environment is resolved from the template too, so local runs use
exactly the variables a deployed stack gives it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any

import boto3
import requests
import yaml
from moto.server import ThreadedMotoServer

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
FUNCTION = "CourtesyFunction"
LOCAL_ACCOUNT = "123456789012"  # moto's default account
LOCAL_REGION = "us-east-1"
ALARM_TOPIC_NAME = "courtesy-alarms"
# What each resource's !Ref gives locally (a topic's Ref is its ARN, as in CloudFormation).
LOCAL_NAMES = {
    "LedgerTable": "courtesy-ledger",
    "IdempotencyTable": "courtesy-idempotency",
    "XCredentialsSecret": "courtesy/x-credentials",
    "AlarmTopic": f"arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{ALARM_TOPIC_NAME}",
}
# The event queues of a stack deployed with Delivery "webhook" (the template's own names are CloudFormation's).
WEBHOOK_QUEUES = {"WebhookEventDeadLetterQueue": "courtesy-webhook-events-dlq", "WebhookEventQueue": "courtesy-webhook-events"}
FAKE_AWS_KEYS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": LOCAL_REGION}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping short-form intrinsics (!Ref X) as {"Ref": X}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path) as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def function_environment(
    template: dict[str, Any], overrides: dict[str, str] | None = None, parameters: dict[str, str] | None = None
) -> dict[str, str]:
    """The function's environment as the template defines it, with parameters at their defaults
    (or as `parameters` overrides them, as `--parameter-overrides` does)."""
    params = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    unknown = sorted(set(parameters or {}) - set(params))
    if unknown:
        raise ValueError(f"template.yaml has no parameter {', '.join(unknown)}")
    params.update(parameters or {})
    env = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    env.update(template["Resources"][FUNCTION]["Properties"]["Environment"]["Variables"])
    resolved = {}
    for key, value in env.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            value = params[ref] if ref in params else LOCAL_NAMES[ref]
        resolved[key] = str(value)
    resolved.update(overrides or {})
    return resolved


class LocalAws:
    """moto in server mode on a free loopback port, plus the stack's tables, secret and topic."""

    def __init__(self, template: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.template = template or load_template()
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> LocalAws:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def client_env(self) -> dict[str, str]:
        """What a boto3 client needs to talk to this local AWS (standard variables only)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **FAKE_AWS_KEYS}

    @functools.cache  # noqa: B019 - one client per service for the server's lifetime; building one takes ~0.1 s
    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=LOCAL_REGION, aws_access_key_id="local", aws_secret_access_key="local"
        )

    def reset(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def create_stack_resources(self, credentials: dict[str, str] | None) -> None:
        """Create the template's tables (same keys and indexes), the credentials secret and the
        alarm topic (digest mode publishes there)."""
        dynamodb = self.client("dynamodb")
        for table, ttl in table_definitions(self.template):
            dynamodb.create_table(**table)
            if ttl:
                dynamodb.update_time_to_live(TableName=table["TableName"], TimeToLiveSpecification=ttl)
        if credentials is not None:
            self.client("secretsmanager").create_secret(Name=LOCAL_NAMES["XCredentialsSecret"], SecretString=json.dumps(credentials))
        topic_arn = self.client("sns").create_topic(Name=ALARM_TOPIC_NAME)["TopicArn"]
        if topic_arn != LOCAL_NAMES["AlarmTopic"]:  # the function's DIGEST_TOPIC_ARN must name this topic
            raise RuntimeError(f"moto made the alarm topic {topic_arn}, not {LOCAL_NAMES['AlarmTopic']}")

    def create_webhook_queues(self) -> str:
        """The webhook event queue and its dead-letter queue (Delivery "webhook" only), with the
        template's attributes and redrive policy; returns the event queue's URL."""
        sqs = self.client("sqs")
        arns: dict[str, str] = {}
        url = ""
        for logical, name in WEBHOOK_QUEUES.items():  # the dead-letter queue first: the other names it
            attributes = {}
            for key, value in self.template["Resources"][logical]["Properties"].items():
                if key == "RedrivePolicy":
                    target = value["deadLetterTargetArn"]["Fn::GetAtt"][0]
                    value = json.dumps({**value, "deadLetterTargetArn": arns[target]})
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arns[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url


def table_definitions(template: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The template's tables as CreateTable requests (same keys and indexes, local names),
    each with its time-to-live specification (None if it has none)."""
    tables = []
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        table = {
            "TableName": LOCAL_NAMES[logical],
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables.append((table, props.get("TimeToLiveSpecification")))
    return tables


def apply_environment(env: dict[str, str]) -> dict[str, str | None]:
    """Set variables for an in-process handler run; returns what to restore."""
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    return previous


def restore_environment(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def main() -> None:
    """`python -m tools.local_aws --port 5000`: a local AWS for `sam local invoke`, until Ctrl-C."""
    import argparse
    import time

    from sandbox import DEFAULT_CREDENTIALS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 lets containers on a bridge network reach it (not needed with --docker-network host)"
    )
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    with LocalAws(host=args.host, port=args.port) as aws:
        aws.create_stack_resources(DEFAULT_CREDENTIALS)
        print(f"Local AWS at {aws.endpoint}: tables {LOCAL_NAMES['LedgerTable']}, {LOCAL_NAMES['IdempotencyTable']};")
        print(f"secret {LOCAL_NAMES['XCredentialsSecret']} holds the X sandbox's credentials;")
        print(f"topic {LOCAL_NAMES['AlarmTopic']} receives the digest. Ctrl-C stops.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
