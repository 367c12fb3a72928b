"""`make bench`'s webhook part (bench.webhook) on a tiny day: the sandbox's signed deliveries to the
real receiver over HTTP, SQS on moto, the real handler for batches and the hourly safety net. Only
bounds that cannot flake: counts from the sandbox's own records, and a latency bound far above
the modelled delays (about 10 s) plus the handler's run time."""

from __future__ import annotations

import pytest

from bench.traffic import Pattern
from bench.webhook import GOAL_SECONDS, Case, simulate
from courtesy.x_limits import PRICE_PER_ACTIVITY_EVENT

TINY = Pattern("tiny", per_day=12)  # well under X's 15 DMs per 15 minutes


def test_a_steady_day_through_the_webhook_welcomes_everyone_once_within_a_minute(local_aws):
    result = simulate(Case(200, TINY), "webhook", local_aws)

    assert result.expected == 12  # every arrival of the pattern happened
    assert result.answered_once == 12 and result.twice == 0 and result.waiting == 0  # the sandbox's DM log
    assert result.latency(0.95) < GOAL_SECONDS
    assert result.too_many == 0 and result.failed_events == 0 and result.refused_deliveries == 0
    # X bills every follow.follow delivered, the account's own follows included, once each.
    events = result.expected + result.own_follows
    assert result.counts["activity events"] == events
    assert result.activity_usd == pytest.approx(events * PRICE_PER_ACTIVITY_EVENT)
    # One POST per event, none retried, and X's CRC check once a day at most.
    assert result.crc_checks <= 1
    assert result.invocations["WebhookReceiverFunction"] == events + result.crc_checks
    assert result.invocations["CourtesyFunction: scheduled runs"] == 24  # the hourly safety net
    assert 0 < result.invocations["CourtesyFunction: event batches"] <= events
