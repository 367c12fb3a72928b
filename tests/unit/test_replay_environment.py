"""The environment a replay gives the built function (tools/replay.py): the template's
variables, then the env-vars file's, then Lambda's; never this machine's AWS credentials
for a local endpoint, and dry run unless something says otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools import replay
from tools.local_aws import load_template

ENV_JSON = replay.ROOT / "events" / "env.json"


def function(tmp_path: Path) -> replay.BuiltFunction:
    return replay.BuiltFunction(
        template=load_template(),
        handler="courtesy.app.lambda_handler",
        task_root=tmp_path,
        layers=[],
        timeout_s=300,
        memory_mb=256,
        logging_config={"LogFormat": "JSON"},
    )


def test_events_env_json_points_at_the_local_peers_in_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-real-looking-secret")
    monkeypatch.setenv("AWS_PROFILE", "production")
    env = replay.lambda_environment(function(tmp_path), replay.read_env_vars(ENV_JSON), {})
    assert env["X_API_BASE_URL"] == "http://127.0.0.1:8765" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["DRY_RUN"] == "true"  # the template's default: the file does not go live
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")
    assert "AKIAREALLOOKINGKEY00" not in json.dumps(env) and "AWS_PROFILE" not in env
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "300" and env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert env["AWS_SAM_LOCAL"] == "true" and env["LAMBDA_TASK_ROOT"] == str(tmp_path)


def test_parameters_and_the_file_override_in_sams_order(tmp_path):
    """Parameter overrides change the template's values; the file's values win over both."""
    env_vars = tmp_path / "env.json"
    local = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    env_vars.write_text(json.dumps({"Parameters": {"BASELINE_MODE": "full", **local}, "CourtesyFunction": {"WELCOME_MODE": "reply"}}))
    env = replay.lambda_environment(function(tmp_path), replay.read_env_vars(env_vars), {"DryRun": "false", "WelcomeMode": "digest"})
    assert (env["DRY_RUN"], env["WELCOME_MODE"], env["BASELINE_MODE"]) == ("false", "reply", "full")


def test_only_a_file_without_a_local_endpoint_reaches_aws_with_this_machines_credentials(tmp_path, monkeypatch):
    """As `sam local invoke` does, for someone who deliberately replays against their AWS account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-real-looking-secret")
    env = replay.lambda_environment(function(tmp_path), {}, {})
    assert "AWS_ENDPOINT_URL" not in env and env["AWS_ACCESS_KEY_ID"] == "AKIAREALLOOKINGKEY00"
    assert replay.describe(env).startswith("X: X's API (api.x.com) · AWS: AWS (us-east-1)")


def test_an_unknown_parameter_is_named(tmp_path):
    with pytest.raises(replay.ReplayError, match="no parameter DryRn"):
        replay.lambda_environment(function(tmp_path), {}, {"DryRn": "false"})


@pytest.mark.parametrize(
    ("content", "problem"), [("{not json", "cannot read the env-vars file"), ('{"CourtesyFunction": "x"}', "JSON object of objects")]
)
def test_a_malformed_env_vars_file_is_named(tmp_path, content, problem):
    path = tmp_path / "env.json"
    path.write_text(content)
    with pytest.raises(replay.ReplayError, match=problem):
        replay.read_env_vars(path)


def test_the_replay_reads_what_sam_build_made(tmp_path):
    """The built template's code and layer folders, as Lambda mounts them (/var/task, /opt/python)."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "template.yaml").write_text(
        (replay.ROOT / "template.yaml")
        .read_text()
        .replace("CodeUri: src/handler/", "CodeUri: CourtesyFunction")
        .replace("ContentUri: layers/deps/", "ContentUri: DependenciesLayer")
    )
    built = replay.built_function(build)
    assert built.task_root == build / "CourtesyFunction"
    assert built.layers == [
        build / "DependenciesLayer" / "python" / "lib" / "python3.13" / "site-packages",
        build / "DependenciesLayer" / "python",
    ]
    assert (built.handler, built.timeout_s, built.memory_mb) == ("courtesy.app.lambda_handler", 300, 256)
    with pytest.raises(replay.ReplayError, match="no built template"):
        replay.built_function(tmp_path / "nothing")
