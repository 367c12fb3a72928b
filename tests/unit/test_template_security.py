"""What template.yaml grants and denies, evaluated: the secret's resource policy (who may read or
write the X credentials), the role's conditional write, where given-up events go, the throttles
alarm. Intrinsic functions are resolved here for given parameters, so the tests read the policy
a deployed stack would have."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tools.local_aws import load_template

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/courtesy-CourtesyFunctionRole-ABC123"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:courtesy-ScheduleDeadLetterQueue-XYZ"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:courtesy/x-credentials-AbCdEf"
LEDGER_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/courtesy-LedgerTable-ABC"
IDEMPOTENCY_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/courtesy-IdempotencyTable-ABC"
RECEIVER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/courtesy-WebhookReceiverRole-DEF456"
EVENT_QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:courtesy-WebhookEventQueue-XYZ"
EVENT_DLQ_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:courtesy-WebhookEventDeadLetterQueue-XYZ"
RECEIVER_LOGS_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/courtesy-courtesy-webhook:*"
# The resources of webhook delivery (Delivery "webhook"): none of them exists otherwise.
WEBHOOK_RESOURCES = {
    "WebhookReceiverFunction",
    "WebhookReceiverRole",
    "WebhookReceiverFunctionUrl",
    "WebhookReceiverFunctionUrlPublicPermission",
    "WebhookReceiverFunctionUrlInvokePermission",
    "WebhookEventSourceMapping",
    "WebhookEventQueue",
    "WebhookEventDeadLetterQueue",
    "WebhookReceiverLogGroup",
    "WebhookDeadLetterAlarm",
}
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
        self.refs = {
            "XCredentialsSecret": SECRET_ARN,
            "CourtesyFunction": "courtesy-courtesy",
            "AlarmTopic": "arn:aws:sns:topic",
            "WebhookReceiverFunction": "courtesy-courtesy-webhook",
            "WebhookEventQueue": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/courtesy-WebhookEventQueue-XYZ",
        }
        self.attrs = {
            ("CourtesyFunctionRole", "Arn"): ROLE_ARN,
            ("ScheduleDeadLetterQueue", "Arn"): QUEUE_ARN,
            ("LedgerTable", "Arn"): LEDGER_ARN,
            ("IdempotencyTable", "Arn"): IDEMPOTENCY_ARN,
            ("WebhookReceiverRole", "Arn"): RECEIVER_ROLE_ARN,
            ("WebhookEventQueue", "Arn"): EVENT_QUEUE_ARN,
            ("WebhookEventDeadLetterQueue", "Arn"): EVENT_DLQ_ARN,
            ("WebhookEventDeadLetterQueue", "QueueName"): "courtesy-WebhookEventDeadLetterQueue-XYZ",
            ("WebhookReceiverLogGroup", "Arn"): RECEIVER_LOGS_ARN,
        }
        self.conditions = {name: self.resolve(cond) for name, cond in self.template["Conditions"].items()}

    def resource(self, name: str) -> dict[str, Any]:
        return self.resolve(self.template["Resources"][name])

    def exists(self, name: str) -> bool:
        """Whether the resource is created with these parameters (its Condition, if any, holds)."""
        condition = self.template["Resources"][name].get("Condition")
        return condition is None or bool(self.conditions[condition])

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


def role_statements(stack: Stack, role: str = "CourtesyFunctionRole") -> list[dict[str, Any]]:
    (policy,) = stack.resource(role)["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def granted(stack: Stack, action: str, resource: str, role: str = "CourtesyFunctionRole") -> bool:
    return any(
        s["Effect"] == "Allow" and action in s["Action"] and s["Resource"] == resource and "Condition" not in s
        for s in role_statements(stack, role)
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


@pytest.mark.parametrize("delivery, periods", [("schedule", 1), ("webhook", 3)])
def test_throttles_alarm_waits_for_a_function_always_busy_only_with_webhook_delivery(delivery, periods):
    """Webhook batches arriving during a run are throttled and redelivered as a matter of course."""
    alarm = Stack(Delivery=delivery).resource("FunctionThrottlesAlarm")["Properties"]
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Period"]) == (periods, periods, 900)


@pytest.mark.parametrize("delivery", ["schedule", "webhook"])
def test_the_dashboard_shows_every_alarm(delivery):
    """Every alarm the stack has, and (schedule delivery) none it does not have."""
    stack = Stack(Delivery=delivery)
    alarms = {name for name, r in stack.template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm" and stack.exists(name)}
    assert ("WebhookDeadLetterAlarm" in alarms) == (delivery == "webhook")
    body = stack.resource("CourtesyDashboard")["Properties"]["DashboardBody"]
    widget = next(w for w in json.loads(body)["widgets"] if w["type"] == "alarm")
    assert {re.fullmatch(r"<(\w+)\.Arn>", arn).group(1) for arn in widget["properties"]["alarms"]} == alarms  # type: ignore[union-attr]


def test_the_opt_in_parameters_are_off_by_default():
    parameters = load_template()["Parameters"]
    assert parameters["XApiAllowOtherHost"]["Default"] == "false"
    assert parameters["XApiAllowOtherHost"]["AllowedValues"] == ["true", "false"]
    assert parameters["XAuthType"]["AllowedValues"] == ["oauth1", "oauth2"]
    env = Stack().resource("CourtesyFunction")["Properties"]["Environment"]["Variables"]
    assert (env["X_API_ALLOW_OTHER_HOST"], env["X_AUTH_TYPE"]) == ("false", "oauth1")


# --- Webhook delivery (Delivery "webhook") ---------------------------------------------------


def references(node: Any, skip_condition: str | None = None) -> set[str]:
    """The logical ids a template node refers to (Ref, GetAtt, ${...} in Sub), leaving out the
    true branch of any Fn::If on ``skip_condition`` (what exists only under that condition)."""
    found: set[str] = set()
    if isinstance(node, list):
        for value in node:
            found |= references(value, skip_condition)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([\w:.]+)\}", text) if name not in extra}
                found |= references(extra, skip_condition)
            elif key == "Fn::If" and arg[0] == skip_condition:
                found |= references(arg[2], skip_condition)
            else:
                found |= references(arg, skip_condition)
    return found


def test_nothing_of_the_webhook_delivery_exists_with_schedule_delivery():
    template = load_template()
    parameters = template["Parameters"]
    assert parameters["Delivery"]["Default"] == "schedule" and parameters["Delivery"]["AllowedValues"] == ["schedule", "webhook"]
    conditional = {name for name, r in template["Resources"].items() if r.get("Condition") == "WebhookDelivery"}
    assert conditional == WEBHOOK_RESOURCES
    schedule = Stack()
    assert not any(schedule.exists(name) for name in WEBHOOK_RESOURCES)
    assert all(Stack(Delivery="webhook").exists(name) for name in WEBHOOK_RESOURCES)
    # What always exists refers to the webhook resources only under Fn::If WebhookDelivery
    # (CloudFormation would refuse anything else, and schedule delivery would change).
    for name, resource in template["Resources"].items():
        if name not in conditional:
            assert not references(resource, "WebhookDelivery") & conditional, name
    for name, output in template["Outputs"].items():
        if output.get("Condition") != "WebhookDelivery":
            assert not references(output, "WebhookDelivery") & conditional, name
    assert {n for n, o in template["Outputs"].items() if o.get("Condition") == "WebhookDelivery"} == {
        "WebhookUrl",
        "WebhookEventDeadLetterQueueUrl",
    }
    # Schedule delivery is as before: the usual schedule, no queue rights, no other secret reader.
    run = schedule.resource("CourtesyFunction")["Properties"]["Events"]["CourtesySchedule"]["Properties"]
    assert run["ScheduleExpression"] == parameters["ScheduleExpression"]["Default"] == "rate(15 minutes)"
    assert not any(s["Action"][0].startswith("sqs:Receive") for s in role_statements(schedule))
    assert {s["Sid"] for s in role_statements(schedule)} == {
        "LedgerItems",
        "LedgerIndexQuery",
        "IdempotencyRecords",
        "XCredentials",
        "FailedEventsToDeadLetterQueue",
        "OwnLogGroup",
        "DigestPublish",
        "XRayTraces",
    }
    assert denied_by_secret_policy(schedule, RECEIVER_ROLE_ARN, "secretsmanager:GetSecretValue")


def test_with_webhook_delivery_the_scheduled_run_is_the_slower_safety_net():
    parameters = load_template()["Parameters"]
    assert parameters["SafetyNetSchedule"]["Default"] == "rate(1 hour)"
    run = Stack(Delivery="webhook", ScheduleExpression="rate(5 minutes)").resource("CourtesyFunction")
    assert run["Properties"]["Events"]["CourtesySchedule"]["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    run = Stack(Delivery="webhook", SafetyNetSchedule="rate(2 hours)").resource("CourtesyFunction")
    assert run["Properties"]["Events"]["CourtesySchedule"]["Properties"]["ScheduleExpression"] == "rate(2 hours)"


def test_the_receivers_url_is_public_only_with_webhook_delivery():
    """X's webhooks cannot sign with AWS credentials, so the URL has AuthType NONE; it exists only
    with webhook delivery, and no other function has a URL or a public permission."""
    template = load_template()
    stack = Stack(Delivery="webhook")
    url = stack.resource("WebhookReceiverFunctionUrl")
    assert url["Condition"] == "WebhookDelivery"
    assert url["Properties"]["AuthType"] == "NONE" and url["Properties"]["TargetFunctionArn"] == "courtesy-courtesy-webhook"
    public = {
        name
        for name, r in template["Resources"].items()
        if r["Type"] in ("AWS::Lambda::Url", "AWS::Lambda::Permission") or "FunctionUrlConfig" in r.get("Properties", {})
    }
    assert public == {
        "WebhookReceiverFunctionUrl",
        "WebhookReceiverFunctionUrlPublicPermission",
        "WebhookReceiverFunctionUrlInvokePermission",
    }
    for name in public:
        assert template["Resources"][name]["Condition"] == "WebhookDelivery", name
    by_url = stack.resource("WebhookReceiverFunctionUrlPublicPermission")["Properties"]
    assert by_url == {
        "FunctionName": "courtesy-courtesy-webhook",
        "Action": "lambda:InvokeFunctionUrl",
        "Principal": "*",
        "FunctionUrlAuthType": "NONE",
    }
    invoke = stack.resource("WebhookReceiverFunctionUrlInvokePermission")["Properties"]
    assert invoke == {
        "FunctionName": "courtesy-courtesy-webhook",
        "Action": "lambda:InvokeFunction",
        "Principal": "*",
        "InvokedViaFunctionUrl": True,
    }
    output = stack.template["Outputs"]["WebhookUrl"]
    assert output["Condition"] == "WebhookDelivery" and output["Value"] == {"Fn::GetAtt": ["WebhookReceiverFunctionUrl", "FunctionUrl"]}


def test_the_receiver_is_small_quick_and_bounded():
    stack = Stack(Delivery="webhook")
    receiver = stack.resource("WebhookReceiverFunction")["Properties"]
    main = stack.resource("CourtesyFunction")["Properties"]
    assert receiver["Handler"] == "courtesy.webhook_receiver.lambda_handler"
    assert (receiver["CodeUri"], receiver["Layers"]) == (main["CodeUri"], main["Layers"])
    assert receiver["Timeout"] == 10, "X wants an answer within 10 seconds"
    assert receiver["MemorySize"] <= 256 and 1 <= receiver["ReservedConcurrentExecutions"] <= 10
    assert receiver["Role"] == RECEIVER_ROLE_ARN
    assert receiver["Environment"]["Variables"] == {
        "X_CREDENTIALS_SECRET_ID": SECRET_ARN,
        "WEBHOOK_QUEUE_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/courtesy-WebhookEventQueue-XYZ",
    }
    assert "Events" not in receiver and "EventInvokeConfig" not in receiver


def test_the_receivers_role_reads_the_secret_and_queues_events_and_nothing_else():
    stack = Stack(Delivery="webhook", XAuthType="oauth2")
    statements = role_statements(stack, "WebhookReceiverRole")
    grants = {(action, s["Resource"]) for s in statements for action in s["Action"]}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    assert grants == {
        ("secretsmanager:GetSecretValue", SECRET_ARN),
        ("sqs:SendMessage", EVENT_QUEUE_ARN),
        ("logs:CreateLogStream", RECEIVER_LOGS_ARN),
        ("logs:PutLogEvents", RECEIVER_LOGS_ARN),
        ("xray:PutTraceSegments", "*"),
        ("xray:PutTelemetryRecords", "*"),
    }
    # In particular: not the ledger, not the idempotency table, no secret write, no DynamoDB at all.
    assert not any(action.startswith("dynamodb:") for action, _ in grants)
    assert not {resource for _, resource in grants} & {LEDGER_ARN, IDEMPOTENCY_ARN}
    assert not granted(stack, "secretsmanager:PutSecretValue", SECRET_ARN, "WebhookReceiverRole")
    assert not stack.resource("WebhookReceiverRole")["Properties"].get("ManagedPolicyArns")
    # The secret's resource policy lets it read the value, with or without named admins.
    assert not denied_by_secret_policy(stack, RECEIVER_ROLE_ARN, "secretsmanager:GetSecretValue")
    named = Stack(Delivery="webhook", SecretAdminArns=ALICE)
    for principal in (RECEIVER_ROLE_ARN, ROLE_ARN, ALICE, SSO_ADMIN):
        assert not denied_by_secret_policy(named, principal, "secretsmanager:GetSecretValue"), principal
    assert denied_by_secret_policy(named, f"arn:aws:iam::{ACCOUNT}:user/bob", "secretsmanager:GetSecretValue")


def test_the_event_queue_is_encrypted_and_has_an_alarmed_dead_letter_queue():
    stack = Stack(Delivery="webhook")
    queue = stack.resource("WebhookEventQueue")["Properties"]
    dlq = stack.resource("WebhookEventDeadLetterQueue")["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == EVENT_DLQ_ARN
    assert 1 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    assert dlq["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]
    alarm = stack.resource("WebhookDeadLetterAlarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "courtesy-WebhookEventDeadLetterQueue-XYZ"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == alarm["OKActions"] == ["arn:aws:sns:topic"]
    # The topic policy lets this stack's alarms publish: the name matches its pattern.
    assert alarm["AlarmName"].startswith("courtesy-courtesy-")


def test_the_scheduled_function_itself_handles_the_events_one_batch_at_a_time():
    """No separate worker: the event queue feeds CourtesyFunction, whose reserved concurrency of 1
    keeps event batches and scheduled runs from ever overlapping (shared claims, daily count, meta)."""
    template = load_template()
    stack = Stack(Delivery="webhook")
    functions = {name for name, r in template["Resources"].items() if r["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")}
    assert functions == {"CourtesyFunction", "WebhookReceiverFunction"}
    main = stack.resource("CourtesyFunction")["Properties"]
    assert main["Handler"] == "courtesy.app.lambda_handler" and main["ReservedConcurrentExecutions"] == 1
    # SAM's Events cannot carry a Condition, so no function has an SQS event of its own ...
    for name in functions:
        events = template["Resources"][name]["Properties"].get("Events", {})
        assert not [e for e in events.values() if e["Type"] == "SQS"], name
    # ... and the one event source mapping, conditional, feeds the queue to CourtesyFunction.
    mappings = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::EventSourceMapping"}
    assert mappings == {"WebhookEventSourceMapping"}
    mapping = stack.resource("WebhookEventSourceMapping")
    assert mapping["Condition"] == "WebhookDelivery"
    props = mapping["Properties"]
    assert (props["EventSourceArn"], props["FunctionName"]) == (EVENT_QUEUE_ARN, "courtesy-courtesy")
    assert props.get("Enabled", True) is True
    assert (props["BatchSize"], props["MaximumBatchingWindowInSeconds"]) == (10, 5)
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    timeout = template["Resources"]["CourtesyFunction"]["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
    queue = stack.resource("WebhookEventQueue")["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * timeout, "AWS: at least six times the function's timeout"
    # Throttled while a scheduled run is in progress counts a receive: room for several before the DLQ.
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
    # The function's role consumes the queue (the event source polls with it), in webhook mode only.
    # It also sends there, its own wake-ups only (courtesy.welcoming), and to no other queue.
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility", "sqs:SendMessage"):
        assert granted(stack, action, EVENT_QUEUE_ARN), action
    # With schedule delivery: none of it.
    assert not any(a.startswith("sqs:Receive") for s in role_statements(Stack()) for a in s["Action"])
    assert not granted(Stack(), "sqs:SendMessage", EVENT_QUEUE_ARN)
    # No function but the receiver has a URL.
    urls = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Url"}
    assert {stack.resolve(r["Properties"]["TargetFunctionArn"]) for r in urls.values()} == {"courtesy-courtesy-webhook"}
    assert not [name for name in functions if "FunctionUrlConfig" in template["Resources"][name]["Properties"]]


@pytest.mark.parametrize("function", ["CourtesyFunction", "WebhookReceiverFunction"])
def test_each_function_logs_to_its_own_log_group_with_the_retention(function):
    template = load_template()
    props = template["Resources"][function]["Properties"]
    group = template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert group.get("Condition") == template["Resources"][function].get("Condition")
    assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/" + props["FunctionName"]["Fn::Sub"]}
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_ledger_expires_only_event_records_never_a_follower():
    """The ledger table's time to live deletes items carrying "expiration": only the webhook
    events' deduplication records may write it, or a follower could be forgotten and welcomed twice."""
    ttl = load_template()["Resources"]["LedgerTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}
    package = Path(__file__).resolve().parents[2] / "src" / "handler" / "courtesy"
    writers = sorted(p.name for p in package.glob("*.py") if '"expiration"' in p.read_text())
    assert writers == ["event_worker.py"]
