"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from tools.local_aws import LocalAws


@pytest.fixture(scope="session")
def local_aws():
    """DynamoDB and Secrets Manager (moto in server mode), one server for the whole session."""
    with LocalAws() as aws:
        yield aws
