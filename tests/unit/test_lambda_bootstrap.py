"""tools/lambda_bootstrap.py plays Lambda's Python runtime for replays: only the given paths
are importable, the context's remaining time counts down from the timeout, the function is
stopped at it, and stdout carries only the result (or Lambda's error object)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BOOTSTRAP = Path(__file__).resolve().parents[2] / "tools" / "lambda_bootstrap.py"

HANDLERS = """
import sys, time

def remaining(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.3)
    return {"first": first, "second": context.get_remaining_time_in_millis(), "request_id": context.aws_request_id}

def chatty(event, context):
    print("a print from the function")
    return {"echo": event}

def slow(event, context):
    time.sleep(30)

def unmarshallable(event, context):
    return {"when": object()}

def failing(event, context):
    raise ValueError("the run went wrong")

def imports(event, context):
    import importlib.util
    return {name: importlib.util.find_spec(name) is not None for name in event["modules"]}
"""


def invoke(tmp_path: Path, handler: str, event: dict, *, timeout_s: float = 10, source: str = HANDLERS) -> tuple[int, dict, str, float]:
    task_root = tmp_path / "task"
    task_root.mkdir(exist_ok=True)
    (task_root / "fn.py").write_text(source)
    spec = {
        "handler": f"fn.{handler}",
        "task_root": str(task_root),
        "layers": [],
        "runtime_sdk": str(tmp_path / "sdk"),
        "timeout_s": timeout_s,
        "memory_mb": 256,
        "function_name": "CourtesyFunction",
        "region": "us-east-1",
        "account": "123456789012",
        "request_id": "req-1",
        "event": event,
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    started = time.monotonic()
    command = [sys.executable, "-I", "-S", str(BOOTSTRAP), str(spec_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    return done.returncode, json.loads(done.stdout), done.stderr, time.monotonic() - started


def test_the_remaining_time_counts_down_from_the_timeout(tmp_path):
    status, result, log, _ = invoke(tmp_path, "remaining", {}, timeout_s=300)
    assert status == 0
    assert 295_000 < result["first"] <= 300_000
    assert result["first"] - result["second"] >= 300
    assert result["request_id"] == "req-1"
    assert "START RequestId: req-1 Version: $LATEST" in log and "END RequestId: req-1" in log
    assert "REPORT RequestId: req-1\tInit Duration:" in log and "Memory Size: 256 MB" in log


def test_stdout_holds_only_the_result(tmp_path):
    status, result, log, _ = invoke(tmp_path, "chatty", {"a": 1})
    assert (status, result) == (0, {"echo": {"a": 1}})
    assert "a print from the function" in log


def test_the_function_is_stopped_at_its_timeout(tmp_path):
    status, result, log, elapsed = invoke(tmp_path, "slow", {}, timeout_s=1)
    assert status == 1
    assert result == {"errorMessage": "RequestId: req-1 Error: Task timed out after 1.00 seconds", "errorType": "Sandbox.Timedout"}
    assert "Task timed out after 1.00 seconds" in log and "REPORT RequestId: req-1" in log
    assert elapsed < 10


def test_an_unhandled_error_is_lambdas_error_object(tmp_path):
    status, result, log, _ = invoke(tmp_path, "failing", {})
    assert status == 1
    assert (result["errorType"], result["errorMessage"], result["requestId"]) == ("ValueError", "the run went wrong", "req-1")
    assert any("raise ValueError" in line for line in result["stackTrace"])
    assert "the run went wrong" in log


def test_a_result_that_is_not_json_is_the_runtimes_error(tmp_path):
    status, result, _, _ = invoke(tmp_path, "unmarshallable", {})
    assert status == 1
    assert result["errorType"] == "Runtime.MarshalError" and "not JSON serializable" in result["errorMessage"]


def test_only_the_standard_library_and_the_given_paths_are_importable(tmp_path):
    """This interpreter's site-packages (pytest, yaml, tweepy here) stay out of reach."""
    (tmp_path / "sdk").mkdir()
    (tmp_path / "sdk" / "runtime_only.py").write_text("")
    status, result, _, _ = invoke(tmp_path, "imports", {"modules": ["json", "runtime_only", "fn", "pytest", "yaml", "tweepy"]})
    assert status == 0
    assert result == {"json": True, "runtime_only": True, "fn": True, "pytest": False, "yaml": False, "tweepy": False}


def test_a_missing_module_is_named_with_the_file_to_change(tmp_path):
    status, result, log, _ = invoke(tmp_path, "remaining", {}, source="import not_in_the_layer\n")
    assert status == 1
    assert result == {
        "errorMessage": "Unable to import module 'fn': No module named 'not_in_the_layer'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    assert "'not_in_the_layer' is in neither the built function nor its layer" in log
    assert "layers/deps/requirements.txt" in log
