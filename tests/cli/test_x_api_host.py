"""The CLI says which X API host it talks to, or the deployed function talks to."""

from __future__ import annotations

import json

from tests.cli.test_welcome_modes import deploy_function


def test_status_names_x_when_the_function_talks_to_x(world):
    deploy_function(world, WELCOME_MODE="dm")
    code, out, err = world.cli("--stack", "with-function", "status")
    assert code == 0, err
    assert "X API: https://api.twitter.com\n" in out
    code, out, err = world.cli("--stack", "with-function", "status", "--json")
    report = json.loads(out)
    assert (report["x_api"], report["x_api_other_host"]) == ("https://api.twitter.com", False)


def test_status_names_another_host_the_function_was_allowed_to_use(world):
    deploy_function(world, X_API_BASE_URL="http://127.0.0.1:8765/prefix", X_API_ALLOW_OTHER_HOST="true")
    code, out, err = world.cli("--stack", "with-function", "status")
    assert code == 0, err
    assert "X API: http://127.0.0.1:8765   (not X: XApiAllowOtherHost is true; the X credentials go to this host)" in out
    code, out, err = world.cli("--stack", "with-function", "status", "--json")
    report = json.loads(out)
    assert (report["x_api"], report["x_api_other_host"]) == ("http://127.0.0.1:8765", True)

    code, out, err = world.cli("status")  # no function to read: said so
    assert code == 0 and "X API: unknown" in out
