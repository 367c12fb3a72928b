"""The functions' environments fit Lambda's 4 KB even with every free-text parameter at its
maximum length and the longest stack name the template allows; the webhook delivery's receiver
gets only what it reads (its events are handled by the scheduled function itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.local_aws import FUNCTION, load_template

LAMBDA_ENVIRONMENT_BYTES = 4096  # Lambda quotas: all environment variables of a function together
LONGEST_STACK = "s" * 48  # the naming note at the top of template.yaml
# What the template's !Refs become on a deployed stack with that name (CloudFormation's
# generated table names, the secret's ARN with its suffix, the topic's ARN).
DEPLOYED_REFS = {
    "LedgerTable": f"{LONGEST_STACK}-LedgerTable-1ABCDEFGHIJKL",
    "IdempotencyTable": f"{LONGEST_STACK}-IdempotencyTable-1ABCDEFGHIJKL",
    "XCredentialsSecret": f"arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:{LONGEST_STACK}/x-credentials-AbCdEf",
    "AlarmTopic": f"arn:aws:sns:ap-southeast-2:123456789012:{LONGEST_STACK}-courtesy-alarms",
    # SQS's queue URL: the generated queue name is cut to 80 characters.
    "WebhookEventQueue": "https://sqs.ap-southeast-2.amazonaws.com/123456789012/" + "q" * 80,
}
RECEIVER = "WebhookReceiverFunction"


@pytest.mark.parametrize("function", [FUNCTION, RECEIVER])
def test_the_environment_fits_lambdas_4_kb_with_every_parameter_at_its_longest(function):
    template = load_template()
    parameters = template["Parameters"]
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"][function]["Properties"]["Environment"]["Variables"],
    }
    total = 0
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref in parameters:
                param = parameters[ref]
                longest = [str(v) for v in param.get("AllowedValues", [])] or [str(param.get("Default", ""))]
                value = "x" * param["MaxLength"] if "MaxLength" in param else max(longest + [str(param.get("MaxValue", ""))], key=len)
            else:
                value = DEPLOYED_REFS[ref]
        total += len(name) + len(str(value))
    assert total <= LAMBDA_ENVIRONMENT_BYTES, f"{total} bytes of environment at worst"


def test_the_deployed_defaults_send_the_credentials_to_x_only():
    from courtesy.errors import ConfigurationError
    from courtesy.settings import Settings
    from tools.local_aws import function_environment

    env = function_environment(load_template())
    settings = Settings.from_env(env)
    assert (settings.x_api_origin, settings.x_api_other_host, settings.x_api_allow_other_host) == ("https://api.twitter.com", False, False)
    assert settings.x_auth_type == "oauth1"
    with pytest.raises(ConfigurationError, match="X_API_ALLOW_OTHER_HOST"):
        Settings.from_env({**env, "X_API_BASE_URL": "http://127.0.0.1:8765"})


def test_local_runs_allow_the_sandbox_explicitly():
    """events/env.json (sam local invoke) and tools.local_run (the demo, the tests) point the function
    at the sandbox on this machine, with the opt-in, and make a valid configuration."""
    from courtesy.settings import Settings
    from tools.local_aws import LocalAws, function_environment
    from tools.local_run import LocalFunction

    env_file = json.loads((Path(__file__).resolve().parents[2] / "events" / "env.json").read_text())[FUNCTION]
    settings = Settings.from_env(function_environment(load_template(), env_file))
    assert settings.x_api_other_host and settings.x_api_origin.startswith("http://127.0.0.1:")

    local = LocalFunction(LocalAws(), "http://127.0.0.1:8765")
    settings = Settings.from_env(local.env)
    assert settings.x_api_allow_other_host and settings.x_api_origin == "http://127.0.0.1:8765"


def test_the_receiver_gets_only_what_it_reads():
    """The receiver reads the credentials secret and the queue, nothing of the ledger or settings."""
    variables = load_template()["Resources"][RECEIVER]["Properties"]["Environment"]["Variables"]
    assert variables == {"X_CREDENTIALS_SECRET_ID": {"Ref": "XCredentialsSecret"}, "WEBHOOK_QUEUE_URL": {"Ref": "WebhookEventQueue"}}
    source = (Path(__file__).resolve().parents[2] / "src" / "handler" / "courtesy" / "webhook_receiver.py").read_text()
    for name in variables:
        assert f'"{name}"' in source, name
