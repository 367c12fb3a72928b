"""Run the real Lambda handler in this process, as `sam local invoke -e events/...` would,
against a local X sandbox and local AWS. Used by the demo and the integration tests."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities import parameters

from tools.local_aws import LocalAws, apply_environment, function_environment, restore_environment

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str = "schedule.json") -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def event_for_slot(slot: datetime) -> dict[str, Any]:
    """The scheduler's event for one schedule slot (same shape as events/schedule.json)."""
    event = load_event()
    event["scheduled_time"] = slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


@dataclass
class LambdaContext:
    """What Lambda passes as context; the remaining time counts down from `timeout_ms`."""

    function_name: str = "courtesy-local"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:courtesy-local"
    aws_request_id: str = ""
    timeout_ms: int = 300_000

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self._started = datetime.now(UTC)

    def get_remaining_time_in_millis(self) -> int:
        spent = (datetime.now(UTC) - self._started) / timedelta(milliseconds=1)
        return max(0, int(self.timeout_ms - spent))


def _no_wait(seconds: float) -> None:
    """A wait on a simulated clock: the simulation moves the clock."""


class LocalFunction:
    """The deployed function's environment, pointed at local peers."""

    def __init__(
        self,
        aws: LocalAws,
        x_base_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        **overrides: str,
    ):
        # A simulated clock is moved by the simulation, not by sleeping: without `sleep` (which
        # should move it), the function's waits for X's DM window take no time.
        self.clock, self.sleep = clock, sleep
        self.env = function_environment(
            aws.template,
            {
                **aws.client_env,
                "X_API_BASE_URL": x_base_url,
                # The sandbox is not X: the function refuses to send credentials there without this.
                "X_API_ALLOW_OTHER_HOST": "true",
                # A local secret may hold either kind of credentials, and the local AWS lets the
                # function write rotated OAuth 2.0 tokens back, as a stack deployed with XAuthType=oauth2 does.
                "X_AUTH_TYPE": "oauth2",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "AWS_LAMBDA_FUNCTION_NAME": "courtesy-local",
                **overrides,
            },
        )

    @contextlib.contextmanager
    def environment(self, **overrides: str) -> Iterator[Any]:
        """This function's environment, as a fresh container would see it; yields the app module."""
        from courtesy import app  # imported late: the module must see this run's environment

        previous = apply_environment({**self.env, **overrides})
        try:
            # A fresh container: settings and clients are rebuilt from this environment.
            app.runtime.cache_clear()
            parameters.clear_caches()
            app.clock = self.clock or app.utc_now
            app.sleep = self.sleep or (time.sleep if self.clock is None else _no_wait)
            app.wake_up = app.send_wake_up
            yield app
        finally:
            restore_environment(previous)

    def invoke(self, event: dict[str, Any], context: LambdaContext | None = None, **overrides: str) -> dict[str, Any]:
        with self.environment(**overrides) as app:
            return app.lambda_handler(event, context or LambdaContext())
