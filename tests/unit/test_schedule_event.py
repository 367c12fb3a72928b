"""The schedule slot is what makes a run idempotent: the same for every delivery of it."""

from __future__ import annotations

import pytest

from courtesy.app import schedule_slot
from courtesy.errors import InvalidEvent
from tools.local_run import load_event


def test_the_scheduler_event_file_gives_its_slot():
    assert schedule_slot(load_event()) == "2026-11-26T02:15:00Z"


def test_an_eventbridge_rule_event_and_a_scheduler_event_for_the_same_moment_are_the_same_slot():
    assert schedule_slot({"time": "2026-11-26T02:15:00Z"}) == schedule_slot({"scheduled_time": "2026-11-26T02:15:00+00:00"})


@pytest.mark.parametrize(
    "event", [None, [], {}, {"scheduled_time": ""}, {"scheduled_time": 5}, {"scheduled_time": "soon"}, {"time": "2026-11-26T02:15:00"}]
)
def test_anything_else_is_a_clear_error(event):
    with pytest.raises(InvalidEvent):
        schedule_slot(event)
