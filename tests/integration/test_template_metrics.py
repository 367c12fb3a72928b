"""The alarms and the dashboard watch metrics the function really emits, with the same
names and dimensions: a typo on either side would leave an alarm that can never fire."""

from __future__ import annotations

import json
import re

import pytest

from courtesy.errors import AppNotPermitted, ConfigurationError, CredentialsMissing, CredentialsRejected
from sandbox.x_sandbox import PROBLEMS
from tools.local_aws import load_template


def courtesy_metrics_in_template() -> set[tuple[str, frozenset[str]]]:
    """(metric name, dimension names) for every Courtesy metric the template refers to."""
    template = load_template()
    found: set[tuple[str, frozenset[str]]] = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("Namespace") == "Courtesy" and "MetricName" in node:
                found.add((node["MetricName"], frozenset(d["Name"] for d in node.get("Dimensions", []))))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in template["Resources"].items() if v["Type"] != "AWS::CloudWatch::Dashboard"})
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = resource["Properties"]["DashboardBody"]
            text = body["Fn::Sub"] if isinstance(body, dict) else body
            text = text[0] if isinstance(text, list) else text
            for name, dims in re.findall(r'\["Courtesy", "(\w+)"((?:, "\w+", "[\w$]+")*)', text):
                found.add((name, frozenset(re.findall(r'"(\w+)", "[\w$]+"', dims))))
            for dims, name in re.findall(r"SEARCH\('\{Courtesy,([\w,]+)\} MetricName=\\\\?\"(\w+)", text):
                found.add((name, frozenset(dims.split(","))))
    return found


def emitted(out: str) -> set[tuple[str, frozenset[str]]]:
    metrics = set()
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == "Courtesy"
                for dims in directive["Dimensions"]:
                    for metric in directive["Metrics"]:
                        metrics.add((metric["Name"], frozenset(dims)))
    return metrics


def test_every_metric_the_template_watches_is_emitted_by_the_function(stack, capfd):
    stack.run()
    stack.x.add_follower(username="nopost", public_metrics={"followers_count": 3, "following_count": 9, "tweet_count": 0})
    stack.x.add_followers(2, prefix="new")
    stack.run()
    stack.x.fail_next("followers", 401)
    with pytest.raises(CredentialsRejected):
        stack.run()
    # Reply mode (a follower writes, another opts out) and digest mode emit their own.
    stack.run(WELCOME_MODE="reply")
    fan, quitter = stack.x.add_followers(2, prefix="reply")
    stack.run(WELCOME_MODE="reply")
    stack.x.receive_dm(fan["id"], "hi")
    stack.x.receive_dm(quitter["id"], "stop")
    stack.run(WELCOME_MODE="reply")
    stack.x.add_followers(1, prefix="digest")
    stack.run(WELCOME_MODE="digest")
    stack.run({"source": "courtesy.digest", "scheduled_time": "2026-11-27T08:00:00Z"}, WELCOME_MODE="digest")
    watched = courtesy_metrics_in_template()
    assert {"PersonNeeded", "UncertainSends", "FollowersSkipped", "WelcomesSent", "DmEventsRead", "OptOuts", "SendingRefusedRuns"} <= {
        name for name, _ in watched
    }
    missing = watched - emitted(capfd.readouterr().out)
    assert not missing, f"the template watches metrics the function never emits: {missing}"


def person_needed_reasons_in_template() -> set[str]:
    """The Reason values of the PersonNeeded metrics the alarms add up."""
    reasons: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("Namespace") == "Courtesy" and node.get("MetricName") == "PersonNeeded":
                reasons.update(d["Value"] for d in node.get("Dimensions", []) if d["Name"] == "Reason")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_template()["Resources"])
    return reasons


def emitted_values(out: str, metric: str) -> list[dict]:
    """Every EMF record carrying ``metric``: its value and dimensions' values."""
    records = []
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            record = json.loads(line)
            if any(m["Name"] == metric for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]):
                records.append(record)
    return records


def test_every_reason_the_credentials_alarm_adds_up_is_one_the_function_emits(stack, capfd):
    """Dimension values too: an alarm on PersonNeeded with a Reason nobody emits could never fire."""
    stack.run()  # baseline
    stack.x.fail_next("followers", 401)
    with pytest.raises(CredentialsRejected):
        stack.run()
    stack.x.fail_next("followers", 403, body={"title": "Forbidden", "detail": "no", "type": PROBLEMS + "client-forbidden"})
    with pytest.raises(AppNotPermitted):
        stack.run()
    with pytest.raises(CredentialsMissing):
        stack.run(X_CREDENTIALS_SECRET_ID="no-such-secret")
    with pytest.raises(ConfigurationError):
        stack.run(WELCOME_TEMPLATES="not a JSON array")
    # X refuses every DM in the same way: the account's problem. Three runs in a row ask for a person.
    stack.x.add_followers(4, prefix="new")
    stack.x.fail_next("send_dm", 403, count=20, body={"title": "Forbidden", "detail": "DMs restricted", "type": "about:blank"})
    capfd.readouterr()
    summaries = [stack.run() for _ in range(3)]  # never fails the run
    assert [s.get("account_refused") for s in summaries] == [True, True, True]
    assert [s.get("account_refused_runs") for s in summaries] == [1, 2, 3]
    out = capfd.readouterr().out
    person = [r for r in emitted_values(out, "PersonNeeded") if r.get("Reason") == "SendingRefused"]
    assert len(person) == 1 and person[0]["PersonNeeded"] == [1.0], "asked for a person on the third run, once"
    assert [r["SendingRefusedRuns"] for r in emitted_values(out, "SendingRefusedRuns")] == [[1.0]] * 3

    assert person_needed_reasons_in_template() == {
        "CredentialsRejected",
        "AppNotPermitted",
        "CredentialsMissing",
        "ConfigurationError",
        "SendingRefused",
    }


def test_sending_refused_metrics_come_from_the_run_summary_and_never_fail_the_run(stack, capfd):
    """app._publish_metrics reads the summary's account_refused keys, with defaults when absent."""
    base = {
        "followers_read": 0, "new_followers": 0, "welcomed": 0, "skipped": 0, "failed": 0, "pending": 0, "uncertain": 0,
        "uncertain_expired": 0, "reconciled_welcomed": 0, "reconciled_released": 0, "departed": 0, "rate_limited": False,
        "mode": "dm", "opted_out": 0, "confirmations_sent": 0, "skipped_by_reason": {},
    }  # fmt: skip
    with stack.function.environment() as app:
        for summary in (
            base,
            {**base, "account_refused": True, "account_refused_runs": 2},
            {**base, "account_refused": True, "account_refused_runs": 3},
        ):
            capfd.readouterr()
            app._publish_metrics(summary)
            app.metrics.flush_metrics()
            out = capfd.readouterr().out
            refused = summary.get("account_refused", False)
            assert [r["SendingRefusedRuns"] for r in emitted_values(out, "SendingRefusedRuns")] == [[float(refused)]]
            person = [r for r in emitted_values(out, "PersonNeeded") if r.get("Reason") == "SendingRefused"]
            assert len(person) == (1 if summary.get("account_refused_runs", 0) >= 3 else 0)
