"""The operator CLI, in process, against moto in server mode (DynamoDB, Secrets Manager,
CloudFormation) and the local X sandbox; the ledger is seeded by the real handler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from courtesy_cli.main import main
from sandbox import XSandbox
from tests.integration.conftest import Stack
from tools.local_aws import LOCAL_NAMES, LocalAws

STACK = "courtesy"
# What a deployed stack's Outputs say, pointing at the local tables and secret.
OUTPUTS = {
    "LedgerTableName": LOCAL_NAMES["LedgerTable"],
    "IdempotencyTableName": LOCAL_NAMES["IdempotencyTable"],
    "XCredentialsSecretArn": LOCAL_NAMES["XCredentialsSecret"],
}


def stack_template(outputs: dict[str, str]) -> str:
    return json.dumps(
        {
            "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


@pytest.fixture
def x():
    with XSandbox() as sandbox:
        sandbox.add_followers(30, prefix="early")
        yield sandbox


class World:
    """A deployed-like stack (tables, secret, CloudFormation outputs) the CLI finds by name."""

    def __init__(self, aws: LocalAws, x: XSandbox, capsys):
        self.aws, self.x, self.capsys = aws, x, capsys
        self.stack = Stack(aws, x)
        self.dynamodb = aws.client("dynamodb")

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run `courtesy ARGS`; (exit status, stdout, stderr)."""
        self.capsys.readouterr()
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    def run(self, **env: str) -> dict[str, Any]:
        """One scheduled run of the real handler (DRY_RUN=false)."""
        return self.stack.run(**env)

    def items(self) -> dict[str, dict[str, str]]:
        return self.stack.ledger_items()

    def item(self, follower_id: str) -> dict[str, str]:
        return self.items()[follower_id]

    def put(self, follower_id: str, **attributes: str) -> None:
        item = {"follower_id": {"S": follower_id}, **{k: {"S": v} for k, v in attributes.items()}}
        self.dynamodb.put_item(TableName=LOCAL_NAMES["LedgerTable"], Item=item)

    def queued(self, queue: str = "pending") -> list[str]:
        answer = self.dynamodb.query(
            TableName=LOCAL_NAMES["LedgerTable"],
            IndexName="queue-index",
            KeyConditionExpression="#q = :q",
            ExpressionAttributeNames={"#q": "queue"},
            ExpressionAttributeValues={":q": {"S": queue}},
        )
        return [i["follower_id"]["S"] for i in answer["Items"]]


@pytest.fixture
def world(local_aws, x, capsys, monkeypatch):
    local_aws.reset()
    local_aws.create_stack_resources(x.credentials)
    local_aws.client("cloudformation").create_stack(StackName=STACK, TemplateBody=stack_template(OUTPUTS))
    for key, value in local_aws.client_env.items():
        monkeypatch.setenv(key, value)
    for key in ("COURTESY_STACK", "X_API_BASE_URL", "X_API_ALLOW_OTHER_HOST", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    return World(local_aws, x, capsys)
