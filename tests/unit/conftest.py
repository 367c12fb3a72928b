"""Unit-test fixtures: the template's ledger table in moto's in-process DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from tools.local_aws import LOCAL_NAMES, load_template, table_definitions

LEDGER_TABLE = LOCAL_NAMES["LedgerTable"]


@contextmanager
def moto_ledger_table() -> Iterator[Any]:
    """A DynamoDB client with the ledger table exactly as template.yaml defines it (keys and index)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        [table] = [t for t, _ in table_definitions(load_template()) if t["TableName"] == LEDGER_TABLE]
        client.create_table(**table)
        yield client
