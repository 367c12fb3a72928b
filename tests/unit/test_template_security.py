"""What template.yaml grants and denies, evaluated: the secret's resource policy (who may read or
write the X credentials), the role's conditional write, where given-up events go, the throttles
alarm. Intrinsic functions are resolved here for given parameters, so the tests read the policy
a deployed stack would have."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import pytest

from tools.local_aws import load_template

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/courtesy-CourtesyFunctionRole-ABC123"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:courtesy-ScheduleDeadLetterQueue-XYZ"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:courtesy/x-credentials-AbCdEf"
NO_VALUE = object()


class Stack:
    """The template with parameters set, its intrinsics resolved as CloudFormation would."""

    def __init__(self, **parameters: str):
        self.template = load_template()
        self.params: dict[str, Any] = {}
        for name, spec in self.template["Parameters"].items():
            value = parameters.get(name, str(spec.get("Default", "")))
            self.params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        self.params.update({"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::StackName": "courtesy"})
        self.refs = {"XCredentialsSecret": SECRET_ARN, "CourtesyFunction": "courtesy-courtesy", "AlarmTopic": "arn:aws:sns:topic"}
        self.attrs = {("CourtesyFunctionRole", "Arn"): ROLE_ARN, ("ScheduleDeadLetterQueue", "Arn"): QUEUE_ARN}
        self.conditions = {name: self.resolve(cond) for name, cond in self.template["Conditions"].items()}

    def resource(self, name: str) -> dict[str, Any]:
        return self.resolve(self.template["Resources"][name])

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(v) for v in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.params[arg] if arg in self.params else self.refs.get(arg, f"<{arg}>")
            if key == "Fn::GetAtt":
                return self.attrs.get(tuple(arg), f"<{'.'.join(arg)}>")
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

                def sub(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in extra:
                        return extra[name]
                    if "." in name:
                        return self.attrs.get(tuple(name.split(".", 1)), f"<{name}>")  # type: ignore[arg-type]
                    return self.params[name] if name in self.params else self.refs.get(name, f"<{name}>")

                return re.sub(r"\$\{([\w:.]+)\}", sub, text)
            if key == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Fn::If":
                return self.resolve(arg[1] if self.conditions[arg[0]] else arg[2])
            if key == "Fn::Equals":
                first, second = self.resolve(arg)
                return first == second
            if key == "Fn::Not":
                return not self.resolve(arg)[0]
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


def arn_like(value: str, pattern: str) -> bool:
    """IAM's ArnLike: each of the six colon-separated parts matched with * and ? wildcards."""
    values, patterns = value.split(":", 5), pattern.split(":", 5)
    return len(values) == len(patterns) == 6 and all(fnmatch.fnmatchcase(v, p) for v, p in zip(values, patterns, strict=True))


def denied_by_secret_policy(stack: Stack, principal: str, action: str) -> bool:
    policy = stack.resource("XCredentialsSecretPolicy")["Properties"]["ResourcePolicy"]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
        if action not in statement["Action"]:
            continue
        (operator, conditions), *more = statement["Condition"].items()
        assert operator == "ArnNotLike" and not more and list(conditions) == ["aws:PrincipalArn"]
        patterns = conditions["aws:PrincipalArn"]
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not any(arn_like(principal, p) for p in patterns):
            return True
    return False


SSO_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f"
SSO_READ_ONLY = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_ReadOnlyAccess_0a1b2c3d4e5f"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
OTHER_ACCOUNT_ROOT = "arn:aws:iam::210987654321:root"


def test_only_the_function_and_the_administrators_may_read_the_credentials():
    action = "secretsmanager:GetSecretValue"
    stack = Stack()
    for allowed in (ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:root", SSO_ADMIN):
        assert not denied_by_secret_policy(stack, allowed, action), allowed
    for refused in (ALICE, SSO_READ_ONLY, f"arn:aws:iam::{ACCOUNT}:role/some-other-lambda-role", OTHER_ACCOUNT_ROOT):
        assert denied_by_secret_policy(stack, refused, action), refused

    named = Stack(SecretAdminArns=f"{ALICE},arn:aws:iam::{ACCOUNT}:role/ops-*")
    assert not denied_by_secret_policy(named, ALICE, action)
    assert not denied_by_secret_policy(named, f"arn:aws:iam::{ACCOUNT}:role/ops-oncall", action)
    assert not denied_by_secret_policy(named, ROLE_ARN, action) and not denied_by_secret_policy(named, SSO_ADMIN, action)
    assert denied_by_secret_policy(named, f"arn:aws:iam::{ACCOUNT}:user/bob", action)


@pytest.mark.parametrize(
    "action",
    [
        "secretsmanager:PutSecretValue",  # an operator puts the first credentials in
        "secretsmanager:DescribeSecret",
        "secretsmanager:UpdateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:PutResourcePolicy",
        "secretsmanager:DeleteResourcePolicy",
        "secretsmanager:TagResource",
    ],
)
def test_the_stack_can_still_be_managed_by_whoever_deploys_it(action):
    """Only the value is guarded: CloudFormation (with the deployer's permissions) can update and
    delete the secret and its policy, and an administrator can always change the policy."""
    assert not denied_by_secret_policy(Stack(), f"arn:aws:iam::{ACCOUNT}:role/cfn-deployer", action)


def test_the_secret_policy_is_attached_to_the_secret_and_never_public():
    props = Stack().resource("XCredentialsSecretPolicy")["Properties"]
    assert props["SecretId"] == SECRET_ARN and props["BlockPublicPolicy"] is True
    assert not [s for s in props["ResourcePolicy"]["Statement"] if s["Effect"] == "Allow"]


def role_statements(stack: Stack) -> list[dict[str, Any]]:
    (policy,) = stack.resource("CourtesyFunctionRole")["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def granted(stack: Stack, action: str, resource: str) -> bool:
    return any(
        s["Effect"] == "Allow" and action in s["Action"] and s["Resource"] == resource and "Condition" not in s
        for s in role_statements(stack)
    )


def test_the_role_writes_the_secret_only_with_oauth2():
    oauth1, oauth2 = Stack(), Stack(XAuthType="oauth2")
    assert oauth1.params["XAuthType"] == "oauth1", "OAuth 1.0a is the default"
    for stack in (oauth1, oauth2):
        assert granted(stack, "secretsmanager:GetSecretValue", SECRET_ARN)
    assert not any("secretsmanager:PutSecretValue" in s["Action"] for s in role_statements(oauth1))
    assert granted(oauth2, "secretsmanager:PutSecretValue", SECRET_ARN)
    env = oauth2.resource("CourtesyFunction")["Properties"]["Environment"]["Variables"]
    assert env["X_AUTH_TYPE"] == "oauth2"


def test_events_lambda_gives_up_on_reach_the_dead_letter_queue():
    stack = Stack()
    config = stack.resource("CourtesyFunction")["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": QUEUE_ARN}
    assert granted(stack, "sqs:SendMessage", QUEUE_ARN), "Lambda sends to the destination with the function's role"


def test_throttles_alarm_notifies_the_topic():
    alarm = Stack().resource("FunctionThrottlesAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Throttles")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": "courtesy-courtesy"}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == alarm["OKActions"] == ["arn:aws:sns:topic"]


def test_the_dashboard_shows_every_alarm():
    template = load_template()
    alarms = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    body = template["Resources"]["CourtesyDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widget = next(w for w in json.loads(re.sub(r"\$\{([\w.:]+)\}", r"\1", body))["widgets"] if w["type"] == "alarm")
    assert {arn.removesuffix(".Arn") for arn in widget["properties"]["alarms"]} == alarms


def test_the_opt_in_parameters_are_off_by_default():
    parameters = load_template()["Parameters"]
    assert parameters["XApiAllowOtherHost"]["Default"] == "false"
    assert parameters["XApiAllowOtherHost"]["AllowedValues"] == ["true", "false"]
    assert parameters["XAuthType"]["AllowedValues"] == ["oauth1", "oauth2"]
    env = Stack().resource("CourtesyFunction")["Properties"]["Environment"]["Variables"]
    assert (env["X_API_ALLOW_OTHER_HOST"], env["X_AUTH_TYPE"]) == ("false", "oauth1")
