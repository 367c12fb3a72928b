"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from tools.local_aws import LocalAws


def pytest_collection_modifyitems(items):
    """Tests marked long run first, each followed by a short one. `make test` runs two workers,
    and xdist hands a worker the test after the one it is running: two long tests side by side
    would queue on one worker while the other runs out of work."""
    short = [item for item in items if not item.get_closest_marker("long")]
    order = []
    for item in (item for item in items if item.get_closest_marker("long")):
        order += [item, short.pop()] if short else [item]
    items[:] = order + short


@pytest.fixture(scope="session")
def local_aws():
    """DynamoDB and Secrets Manager (moto in server mode), one server for the whole session."""
    with LocalAws() as aws:
        yield aws
