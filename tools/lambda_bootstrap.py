"""Lambda's Python runtime, as much of it as a replay needs: run one event through the built
function in this interpreter, the way the python3.13 runtime runs it in Lambda.

tools/replay.py starts it as `python3.13 -I -S lambda_bootstrap.py SPEC`: no site-packages
and no PYTHON* variables, so the only code importable is the standard library and the
paths in SPEC (the built function, its layer, the runtime's boto3), in Lambda's order.
It uses the standard library only. The function's own output goes to stderr with the
START/END/REPORT lines; the result (or Lambda's error object) is the one line on stdout.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import resource
import sys
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class LambdaContext:
    """The context object Lambda passes: the remaining time counts down from the timeout."""

    def __init__(self, spec: dict[str, Any], request_id: str, deadline: float):
        name = spec["function_name"]
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{spec['region']}:{spec['account']}:function:{name}"
        self.memory_limit_in_mb = int(spec["memory_mb"])
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}")
        self.log_stream_name = "$LATEST"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _JsonFormatter(logging.Formatter):
    """The runtime's JSON log format (LoggingConfig LogFormat JSON) for records of loggers
    the function does not format itself (libraries' loggers reach the root logger)."""

    request_id = ""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": self.request_id,
        }
        if record.exc_info:
            entry["stackTrace"] = traceback.format_exception(*record.exc_info)
        return json.dumps(entry)


def _missing_module_hint(error: ModuleNotFoundError, spec: dict[str, Any]) -> str:
    """Why a module the function imports is missing, and what to change."""
    name = error.name or "?"
    top = name.split(".")[0]
    for layer in spec["layers"]:
        built = list(Path(layer).glob(f"**/{name.replace('.', '/')}.*.so"))
        if built:
            return (
                f"{name!r} is in the layer, but compiled for another machine ({built[0].name}); "
                f"this machine is {os.uname().machine}. Replay on a machine of the function's architecture."
            )
    return (
        f"{top!r} is in neither the built function nor its layer, nor is it part of the runtime "
        f"(boto3, botocore): add it to layers/deps/requirements.txt and build again."
    )


def _error_object(error: BaseException, request_id: str, error_type: str | None = None) -> dict[str, Any]:
    frames = traceback.extract_tb(error.__traceback__)
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": request_id,
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(frames)],
    }


def run(spec: dict[str, Any]) -> int:
    # The result is the only thing on stdout: the function's own prints and logs go to stderr.
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    err = sys.stderr

    sys.path[:0] = [spec["task_root"], *spec["layers"], spec["runtime_sdk"]]
    os.chdir(spec["task_root"])
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    formatter = _JsonFormatter()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO"))

    def finish(result: dict[str, Any] | Any, request_id: str, started: float | None, init_ms: float) -> None:
        if started is not None:
            duration = (time.monotonic() - started) * 1000
            used_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            print(f"END RequestId: {request_id}", file=err)
            print(
                f"REPORT RequestId: {request_id}\tInit Duration: {init_ms:.2f} ms\tDuration: {duration:.2f} ms\t"
                f"Billed Duration: {math.ceil(duration)} ms\tMemory Size: {spec['memory_mb']} MB\tMax Memory Used: {used_mb} MB",
                file=err,
            )
            if used_mb > int(spec["memory_mb"]):
                print(
                    f"warning: {used_mb} MB used, more than the function's {spec['memory_mb']} MB: Lambda would have stopped it", file=err
                )
        result_out.write(json.dumps(result) + "\n")
        result_out.flush()
        err.flush()

    module_name, _, function_name = spec["handler"].rpartition(".")
    init_started = time.monotonic()
    try:
        module = importlib.import_module(module_name)
        handler_function = getattr(module, function_name)
    except ModuleNotFoundError as error:
        message = f"Unable to import module '{module_name}': {error}"
        print(f"[ERROR] Runtime.ImportModuleError: {message}", file=err)
        print(f"replay: {_missing_module_hint(error, spec)}", file=err)
        finish({"errorMessage": message, "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}, "", None, 0)
        return 1
    except Exception as error:  # noqa: BLE001 - the runtime reports any failure of the init phase
        traceback.print_exc(file=err)
        finish(_error_object(error, "", "Runtime.Unknown"), "", None, 0)
        return 1
    init_ms = (time.monotonic() - init_started) * 1000

    event = spec["event"]
    request_id = spec.get("request_id") or str(uuid.uuid4())
    formatter.request_id = request_id
    timeout = float(spec["timeout_s"])
    started = time.monotonic()
    context = LambdaContext(spec, request_id, started + timeout)

    def timed_out() -> None:
        message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
        print(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {request_id} Task timed out after {timeout:.2f} seconds", file=err)
        finish({"errorMessage": message, "errorType": "Sandbox.Timedout"}, request_id, started, init_ms)
        os._exit(1)  # Lambda stops the function where it is

    watchdog = threading.Timer(timeout, timed_out)
    watchdog.daemon = True
    print(f"START RequestId: {request_id} Version: $LATEST", file=err)
    watchdog.start()
    try:
        result = handler_function(event, context)
    except Exception as error:  # noqa: BLE001 - reported as Lambda reports an unhandled error
        watchdog.cancel()
        logging.getLogger().error("%s: %s", type(error).__name__, error, exc_info=error)
        finish(_error_object(error, request_id), request_id, started, init_ms)
        return 1
    watchdog.cancel()
    try:
        json.dumps(result)
    except (TypeError, ValueError) as error:  # Lambda answers in JSON: anything else is the runtime's error
        marshal = {"errorMessage": f"Unable to marshal response: {error}", "errorType": "Runtime.MarshalError", "requestId": request_id}
        finish({**marshal, "stackTrace": []}, request_id, started, init_ms)
        return 1
    finish(result, request_id, started, init_ms)
    return 0


def main() -> int:
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
