"""What `sam build` makes runs: the replay (`make replay`, tools/replay.py) runs events through
.aws-sam/build alone, in a Python 3.13 with nothing of the virtualenv, against the sandbox
over HTTP and moto. A runtime dependency missing from layers/deps/requirements.txt fails
here, with a message naming the module.

The build is cached: it runs again only when template.yaml, src/handler or layers/deps change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools import replay

EVENTS = replay.ROOT / "events"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def built() -> Path:
    try:
        python313 = replay.find_python313()
        with tempfile.TemporaryFile("w+") as log:
            try:
                replay.ensure_built(python313, output=log)
                replay.ensure_runtime_sdk(output=log)
            except replay.ReplayError:
                log.seek(0)
                pytest.fail(f"the build failed:\n{log.read()[-4000:]}")
    except replay.ReplayError as e:
        pytest.fail(str(e))
    os.environ["PYTHON313"] = python313
    return replay.BUILD_DIR


@pytest.fixture
def env_vars(tmp_path, local_aws, x) -> Path:
    """events/env.json, pointed at this test's sandbox and moto."""
    local_aws.reset()
    local_aws.create_stack_resources(x.credentials)
    content = json.loads((EVENTS / "env.json").read_text())
    content["CourtesyFunction"].update(X_API_BASE_URL=x.base_url, AWS_ENDPOINT_URL=local_aws.endpoint)
    path = tmp_path / "env.json"
    path.write_text(json.dumps(content))
    return path


def run_replay(env_vars: Path, *args: str, event: str = "schedule.json") -> tuple[int, dict, str]:
    command = [sys.executable, "-m", "tools.replay", "--event", str(EVENTS / event), "--env-vars", str(env_vars), *args]
    done = subprocess.run(command, cwd=replay.ROOT, capture_output=True, text=True, timeout=400, check=False)  # noqa: S603
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = {}
    return done.returncode, result, done.stderr


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_built_artifact_records_a_baseline_then_welcomes_each_newcomer_once(built, env_vars, x):
    status, result, log = run_replay(env_vars, "--at", at(0), "--parameter-overrides", "DryRun=false")
    assert status == 0, f"the built function failed:\n{log[-4000:]}"
    assert result["baseline"] is True and result["followers_read"] == 50  # one newest page
    assert x.dm_log == []
    assert "START RequestId:" in log and "REPORT RequestId:" in log and "Memory Size: 256 MB" in log

    newcomers = [u["id"] for u in x.add_followers(2, prefix="new")]
    status, result, log = run_replay(env_vars, "--at", at(15), "--parameter-overrides", "DryRun=false")
    assert status == 0, f"the built function failed:\n{log[-4000:]}"
    assert sorted(d["recipient_id"] for d in x.dm_log) == sorted(newcomers)
    assert result["welcomed"] == 2

    # The same event again is a duplicate: answered from the idempotency record, nothing sent.
    status, _, log = run_replay(env_vars, "--at", at(15), "--parameter-overrides", "DryRun=false")
    assert status == 0 and "was handled before" in log
    assert sorted(d["recipient_id"] for d in x.dm_log) == sorted(newcomers)


def test_the_built_artifact_publishes_the_digest(built, env_vars, x, local_aws):
    assert run_replay(env_vars, "--at", at(0), "--parameter-overrides", "WelcomeMode=digest")[0] == 0
    x.add_followers(3, prefix="new")
    assert run_replay(env_vars, "--at", at(15), "--parameter-overrides", "WelcomeMode=digest")[0] == 0
    status, result, log = run_replay(env_vars, "--at", at(30), "--parameter-overrides", "WelcomeMode=digest", event="digest.json")
    assert status == 0, f"the built function failed:\n{log[-4000:]}"
    assert result["listed"] == 3 and result["not_published"] is False
    assert x.dm_log == []


def test_a_dependency_missing_from_the_layer_fails_naming_it(built, env_vars, tmp_path):
    """What CI shows when code imports a package layers/deps/requirements.txt does not bring:
    the virtualenv has tweepy, and the replay must not find it there."""
    broken = tmp_path / "build"
    shutil.copytree(built, broken)
    layer = broken / "DependenciesLayer" / "python"
    for path in layer.glob("tweepy*"):
        shutil.rmtree(path)
    status, result, log = run_replay(env_vars, "--at", at(0), "--build-dir", str(broken))
    assert status == 1
    assert result["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'tweepy'" in result["errorMessage"]
    assert "'tweepy' is in neither the built function nor its layer" in log and "layers/deps/requirements.txt" in log


def test_nothing_answering_locally_is_named_before_the_run(built, tmp_path):
    env_vars = tmp_path / "env.json"
    content = json.loads((EVENTS / "env.json").read_text())
    content["CourtesyFunction"]["X_API_BASE_URL"] = "http://127.0.0.1:9"  # discard: nothing listens
    env_vars.write_text(json.dumps(content))
    status, _, log = run_replay(env_vars)
    assert status == 2
    assert "nothing answers at http://127.0.0.1:9 (X_API_BASE_URL): start the X sandbox" in log
