"""Digest mode end to end, through the real handler: no automated DM at all; once a day the
operator gets, through the alarm topic (SNS on moto), every new follower exactly once,
notable ones first, with a profile link and a suggested note."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from courtesy import digest as digest_module
from courtesy.digest import DigestMaybePublished
from courtesy.errors import DigestNotPublished
from courtesy.lifecycle import State
from tests.faults import Crash, CrashAt
from tests.integration.conftest import digest_event, listed_usernames
from tools.local_aws import LOCAL_NAMES

DIGEST = {"WELCOME_MODE": "digest"}


def test_given_digest_mode_each_new_follower_is_listed_once_notable_first_and_nobody_gets_a_dm(stack, inbox):
    stack.run(**DIGEST)  # baseline
    plain = stack.x.add_followers(3, prefix="fan")
    star = stack.x.add_follower(
        username="bigname",
        name="Big Name",
        public_metrics={"followers_count": 50_000, "following_count": 10, "tweet_count": 900, "listed_count": 3},
    )
    stack.run(**DIGEST)
    summary = stack.run(digest_event(stack), **DIGEST)
    assert summary["listed"] == 4 and summary["notable"] == 1
    (message,) = inbox.messages()
    listed = listed_usernames(message["body"])
    assert listed[0] == "bigname", "notable followers come first"
    assert sorted(listed) == sorted(["bigname", *(u["username"] for u in plain)])
    assert "Suggested note: " in message["body"] and "4 new followers" in message["subject"]
    for user in plain:
        assert f"https://x.com/{user['username']}" in message["body"]
    assert stack.x.dm_log == [], "digest mode sent a DM"
    # The next day: only followers new since then; none at all means no e-mail.
    stack.run(**DIGEST)
    stack.slot += timedelta(days=1)
    assert stack.run(digest_event(stack), **DIGEST)["listed"] == 0
    assert inbox.messages() == []
    late = stack.x.add_followers(1, prefix="late")[0]
    stack.run(**DIGEST)
    stack.slot += timedelta(days=1)
    stack.run(digest_event(stack), **DIGEST)
    assert [listed_usernames(m["body"]) for m in inbox.messages()] == [[late["username"]]]
    assert {stack.state_of(u["id"]) for u in [*plain, star, late]} == {State.LISTED}
    assert stack.x.dm_log == []


def test_a_digest_that_dies_after_publishing_lists_its_followers_again_marked_as_such(stack, inbox, monkeypatch):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    from courtesy import ledger as ledger_module

    original = ledger_module.Ledger.move

    def die(self, name, *args, **kwargs):
        if name == "mark_listed":
            raise Crash("died after publishing, before recording")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(ledger_module.Ledger, "move", die)
    with pytest.raises(Crash):
        stack.run(digest_event(stack), **DIGEST)
    monkeypatch.setattr(ledger_module.Ledger, "move", original)
    stack.slot += timedelta(days=1)
    summary = stack.run(digest_event(stack), **DIGEST)
    assert summary["listed"] == 2 and summary["listed_again"] == 2
    first, second = inbox.messages()
    assert sorted(listed_usernames(first["body"])) == sorted(listed_usernames(second["body"])) == sorted(u["username"] for u in fans)
    assert second["body"].count("may be in an earlier digest") == 2
    assert {stack.state_of(u["id"]) for u in fans} == {State.LISTED}


def test_a_digest_sns_refuses_fails_the_run_and_its_followers_wait_for_the_next(stack, inbox):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    with pytest.raises(DigestNotPublished):
        stack.run(digest_event(stack), **DIGEST, DIGEST_TOPIC_ARN=LOCAL_NAMES["AlarmTopic"] + "-missing")
    assert {stack.state_of(u["id"]) for u in fans} == {State.PENDING}
    stack.slot += timedelta(days=1)
    assert stack.run(digest_event(stack), **DIGEST)["listed"] == 2
    (message,) = inbox.messages()
    assert "may be in an earlier digest" not in message["body"]


def test_a_digest_event_outside_digest_mode_does_nothing(stack, inbox):
    stack.run()
    stack.x.add_followers(2, prefix="fan")
    summary = stack.run(digest_event(stack))
    assert summary["skipped_run"] is True
    assert inbox.messages() == []


def test_the_scheduled_runs_and_the_digest_with_the_same_time_are_different_runs(stack, inbox):
    stack.run(**DIGEST)
    stack.x.add_followers(1, prefix="fan")
    run = stack.run(**DIGEST)
    same_time = {"source": "courtesy.digest", "scheduled_time": stack.slot.strftime("%Y-%m-%dT%H:%M:%SZ")}
    digest = stack.run(same_time, **DIGEST)
    assert run.keys() != digest.keys() and digest["listed"] == 1


def test_a_crash_in_the_scan_of_digest_mode_loses_nobody(stack, inbox, monkeypatch):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(3, prefix="fan")
    from courtesy import welcome_cycle

    real = welcome_cycle.WelcomeCycle.__init__

    def crashing(self, **kwargs):
        real(self, **kwargs)
        self.ledger = CrashAt(self.ledger, "record_new", nth=2)

    monkeypatch.setattr(welcome_cycle.WelcomeCycle, "__init__", crashing)
    with pytest.raises(Crash):
        stack.run(**DIGEST)
    monkeypatch.undo()
    stack.run(**DIGEST)
    stack.run(digest_event(stack), **DIGEST)
    (message,) = inbox.messages()
    assert sorted(listed_usernames(message["body"])) == sorted(u["username"] for u in fans)


# --- Published at most once: one attempt, never retried; a maybe-published digest's followers
# are listed again, marked. Faults are put on the function's own SNS client, on the wire
# (botocore's before-send), and the promise is checked from what the topic delivered.


class _Body:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body


def _sns_error(request, status: int, code: str):
    body = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>injected</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    ).encode()
    return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Body(body))


class SnsFault:
    """The function's next SNS publish fails in one way; later attempts (a retry) go through."""

    def __init__(self, monkeypatch, kind: str):
        self.kind, self.attempts, self.clients = kind, 0, []
        real = boto3.client

        def client(service, *args, **kwargs):
            made = real(service, *args, **kwargs)
            if service == "sns":
                made.meta.events.register("before-send.sns.Publish", self._before_send)
                self.clients.append(made)
            return made

        monkeypatch.setattr(boto3, "client", client)

    def _deliver(self, request) -> None:
        """What SNS does with the request: the topic takes the message."""
        answer = requests.post(request.url, data=request.body, headers=dict(request.headers.items()), timeout=10)
        assert answer.status_code == 200, answer.text

    def _before_send(self, request, **_kwargs):
        self.attempts += 1
        if self.attempts > 1:
            return None
        if self.kind == "answer-lost":  # delivered, then the read timed out
            self._deliver(request)
            raise ReadTimeoutError(endpoint_url=request.url)
        if self.kind == "500-after-delivery":
            self._deliver(request)
            return _sns_error(request, 500, "InternalError")
        if self.kind == "refused-403":
            return _sns_error(request, 403, "AuthorizationError")
        if self.kind == "never-connected":
            raise EndpointConnectionError(endpoint_url=request.url)
        raise AssertionError(self.kind)


@pytest.mark.parametrize("kind", ["answer-lost", "500-after-delivery"])
def test_a_digest_that_may_be_out_is_not_retried_and_its_followers_are_listed_again_marked(stack, inbox, monkeypatch, kind):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    fault = SnsFault(monkeypatch, kind)

    summary = stack.run(digest_event(stack), **DIGEST)  # ends cleanly: its record keeps a redelivery from publishing again

    assert fault.attempts == 1, "the digest was sent again"
    assert fault.clients[0].meta.config.retries["total_max_attempts"] == 1  # one attempt, no retry
    assert summary["outcome_unknown"] is True and summary["listed"] == 0 and not summary["not_published"]
    (delivered,) = inbox.messages()
    assert sorted(listed_usernames(delivered["body"])) == sorted(u["username"] for u in fans)
    assert {stack.state_of(u["id"]) for u in fans} == {State.LISTING}, "maybe published: still claimed"
    monkeypatch.undo()

    stack.slot += timedelta(days=1)
    again = stack.run(digest_event(stack), **DIGEST)
    assert again["listed"] == 2 and again["listed_again"] == 2
    (second,) = inbox.messages()
    assert second["body"].count("may be in an earlier digest") == 2
    assert {stack.state_of(u["id"]) for u in fans} == {State.LISTED}
    assert stack.x.dm_log == []


@pytest.mark.parametrize("kind", ["refused-403", "never-connected"])
def test_a_digest_sns_refused_or_never_reached_is_tried_once_not_published_and_waits(stack, inbox, monkeypatch, kind):
    stack.run(**DIGEST)
    fans = stack.x.add_followers(2, prefix="fan")
    stack.run(**DIGEST)
    fault = SnsFault(monkeypatch, kind)

    with pytest.raises(DigestNotPublished):
        stack.run(digest_event(stack), **DIGEST)

    assert fault.attempts == 1, "botocore retried the publish"
    assert inbox.messages() == []
    assert {stack.state_of(u["id"]) for u in fans} == {State.PENDING}
    monkeypatch.undo()
    stack.slot += timedelta(days=1)
    assert stack.run(digest_event(stack), **DIGEST)["listed"] == 2
    (message,) = inbox.messages()
    assert "may be in an earlier digest" not in message["body"]


def test_a_part_that_may_be_out_keeps_its_followers_and_the_parts_after_it_wait_unmarked(world, monkeypatch):
    monkeypatch.setattr(digest_module, "ENTRIES_PER_MESSAGE", 2)
    world.run(WELCOME_MODE="digest")
    fans = world.x.add_followers(5, prefix="fan")
    world.run(WELCOME_MODE="digest")
    calls = 0

    def second_part_times_out(publish):
        def wrapped(subject: str, body: str) -> None:
            nonlocal calls
            calls += 1
            publish(subject, body)  # delivered...
            if calls == 2:
                raise DigestMaybePublished("no answer from SNS (ReadTimeoutError)")  # ...but no answer came

        return wrapped

    summary = world.run_digest(wrap_publish=second_part_times_out)
    assert calls == 2 and summary.outcome_unknown and summary.listed == 2 and summary.messages == 1
    first, maybe = (listed_usernames(body) for body in world.digests)
    states = world.states()
    by_name = {u["username"]: u["id"] for u in fans}
    assert {states[by_name[u]] for u in first} == {State.LISTED}
    assert {states[by_name[u]] for u in maybe} == {State.LISTING}
    rest = [u["username"] for u in fans if u["username"] not in first + maybe]
    assert len(rest) == 1 and states[by_name[rest[0]]] == State.PENDING, "a part never sent is released"

    world.digests.clear()
    again = world.run_digest()
    assert again.listed == 3 and again.listed_again == 2
    bodies = "\n".join(world.digests)
    assert bodies.count("may be in an earlier digest") == 2
    assert sorted(u for body in world.digests for u in listed_usernames(body)) == sorted(maybe + rest)
