"""The function's environment fits Lambda's 4 KB even with every free-text parameter at its
maximum length and the longest stack name the template allows."""

from __future__ import annotations

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
}


def test_the_environment_fits_lambdas_4_kb_with_every_parameter_at_its_longest():
    template = load_template()
    parameters = template["Parameters"]
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"][FUNCTION]["Properties"]["Environment"]["Variables"],
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
