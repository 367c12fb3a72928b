"""Fault injection around the two adapters: a process that dies at a chosen call, and a
DynamoDB client that throttles. Used by the fault regression tests and the campaign."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from courtesy.lifecycle import BY_NAME


class Crash(BaseException):
    """The Lambda process dying: not an Exception, so nothing in the code can catch it."""


class At:
    """Wraps an adapter; does ``action`` just before or just after the n-th call of one method,
    or, for the ledger, of one lifecycle transition (``ledger.move("claim", ...)``)."""

    def __init__(self, target: Any, method: str, action: Callable[[], None], *, nth: int = 1, after: bool = False):
        self._target, self._method, self._action, self._nth, self._after = target, method, action, nth, after
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name == self._method:
            return self._counted(attr)
        if name in ("move", "record") and self._method in BY_NAME and not hasattr(type(self._target), self._method):

            def transition(which: str, *args: Any, **kwargs: Any) -> Any:
                call = self._counted(attr) if which == self._method else attr
                return call(which, *args, **kwargs)

            return transition
        return attr

    def _counted(self, attr: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self._nth and not self._after:
                self._action()
            result = attr(*args, **kwargs)
            if self.calls == self._nth and self._after:
                self._action()
            return result

        return call


def CrashAt(target: Any, method: str, *, nth: int = 1, after: bool = False) -> At:  # noqa: N802 - reads as a fault
    """Dies just before or just after the n-th call of one method."""

    def die() -> None:
        raise Crash(f"died {'after' if after else 'before'} {method} #{nth}")

    return At(target, method, die, nth=nth, after=after)


def throttled(operation: str) -> ClientError:
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds the allowed throughput."}}
    return ClientError(error, operation)


class FlakyDynamoDB:
    """A boto3 DynamoDB client that throttles chosen calls (after botocore's own retries gave up)
    and can answer a BatchGetItem with some keys left unprocessed."""

    def __init__(self, client: Any):
        self._client = client
        self.throttle: dict[str, int] = {}  # operation name -> how many next calls fail
        self.unprocessed_batches = 0  # next BatchGetItem answers leave half the keys unprocessed
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.throttle.get(name, 0) > 0:
                self.throttle[name] -= 1
                raise throttled(name)
            if name == "batch_get_item" and self.unprocessed_batches > 0:
                self.unprocessed_batches -= 1
                return self._half_unprocessed(kwargs["RequestItems"])
            return attr(**kwargs)

        return call

    def _half_unprocessed(self, request: dict[str, Any]) -> dict[str, Any]:
        ((table, spec),) = request.items()
        keys = spec["Keys"]
        done, left = keys[: len(keys) // 2], keys[len(keys) // 2 :]
        answer = self._client.batch_get_item(RequestItems={table: {**spec, "Keys": done}}) if done else {"Responses": {table: []}}
        answer["UnprocessedKeys"] = {table: {**spec, "Keys": left}} if left else {}
        return answer
