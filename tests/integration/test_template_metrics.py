"""The alarms and the dashboard watch metrics the function really emits, with the same
names and dimensions: a typo on either side would leave an alarm that can never fire."""

from __future__ import annotations

import json
import re

import pytest

from courtesy.errors import CredentialsRejected
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
    assert {"PersonNeeded", "UncertainSends", "FollowersSkipped", "WelcomesSent", "DmEventsRead", "OptOuts"} <= {
        name for name, _ in watched
    }
    missing = watched - emitted(capfd.readouterr().out)
    assert not missing, f"the template watches metrics the function never emits: {missing}"
