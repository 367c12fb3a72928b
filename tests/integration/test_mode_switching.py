"""Switching WelcomeMode on a live stack (the real handler) keeps the ledger: nobody welcomed,
listed or opted out under one mode is messaged again under another. Checked against the
sandbox's DM log and the digests the topic delivered."""

from __future__ import annotations

from datetime import timedelta

from courtesy.lifecycle import State
from tests.integration.conftest import Inbox, digest_event, listed_usernames


def welcomes(x) -> dict[str, int]:
    """Welcome DMs per person (opt-out confirmations left out), from the sandbox's DM log."""
    counts: dict[str, int] = {}
    for dm in x.dm_log:
        if not dm["text"].startswith("Got it"):
            counts[dm["recipient_id"]] = counts.get(dm["recipient_id"], 0) + 1
    return counts


def test_switching_dm_reply_digest_dm_welcomes_nobody_twice(stack):
    inbox = Inbox(stack)
    stack.run()  # baseline, dm mode
    a, b = stack.x.add_followers(2, prefix="dm")
    stack.run()
    assert welcomes(stack.x) == {a["id"]: 1, b["id"]: 1}

    # reply: the welcomed who write get nothing more; a newcomer who writes gets one.
    reply = {"WELCOME_MODE": "reply"}
    c, d, quiet = stack.x.add_followers(3, prefix="reply")
    stack.run(**reply)  # records them; the inbox starts here
    stack.x.receive_dm(a["id"], "hi, thanks for the welcome!")
    stack.x.receive_dm(c["id"], "hello")
    stack.x.receive_dm(d["id"], "STOP")
    summary = stack.run(**reply)
    # d never heard from Courtesy: the opt-out is recorded silently.
    assert summary["welcomed"] == 1 and summary["opted_out"] == 1 and summary["confirmations_sent"] == 0
    assert welcomes(stack.x) == {a["id"]: 1, b["id"]: 1, c["id"]: 1}

    # digest: only followers new since are listed; nobody gets a DM.
    digest = {"WELCOME_MODE": "digest"}
    e = stack.x.add_followers(1, prefix="digest")[0]
    stack.run(**digest)
    stack.run(digest_event(stack), **digest)
    (message,) = inbox.messages()
    assert listed_usernames(message["body"]) == [e["username"]]
    g = stack.x.add_followers(1, prefix="late")[0]  # queued for a digest that never comes
    stack.run(**digest)

    # dm again: the one still waiting for a digest is welcomed; the listed, the opted out
    # and those who arrived in reply mode and never wrote are not.
    f = stack.x.add_followers(1, prefix="dm2")[0]
    for _ in range(2):
        stack.run()
    assert welcomes(stack.x) == {a["id"]: 1, b["id"]: 1, c["id"]: 1, g["id"]: 1, f["id"]: 1}
    assert stack.state_of(d["id"]) == State.OPTED_OUT and stack.state_of(e["id"]) == State.LISTED
    assert stack.state_of(quiet["id"]) == State.PENDING
    assert stack.x.dms_to(d["id"]) == []
    assert inbox.messages() == []


def test_a_dm_backlog_waits_for_a_message_after_switching_to_reply(stack):
    stack.run()
    backlog = stack.x.add_followers(3, prefix="queued")
    stack.run(DRY_RUN="true")  # queued, not welcomed
    reply = {"WELCOME_MODE": "reply"}
    stack.run(**reply)
    stack.run(**reply)
    assert stack.x.dm_log == [], "the dm backlog was messaged unasked in reply mode"
    stack.x.receive_dm(backlog[1]["id"], "hey")
    stack.run(**reply)
    assert welcomes(stack.x) == {backlog[1]["id"]: 1}


def test_someone_who_wrote_in_reply_mode_and_was_not_answered_yet_is_welcomed_after_switching_to_dm(stack):
    stack.run()
    reply = {"WELCOME_MODE": "reply"}
    stack.run(**reply)
    fan = stack.x.add_followers(1, prefix="fan")[0]
    stack.run(**reply)
    stack.x.receive_dm(fan["id"], "hello!")
    stack.run(**reply, DRY_RUN="true")  # owed a reply, not sent yet
    stack.slot += timedelta(minutes=1)
    stack.run()
    assert welcomes(stack.x) == {fan["id"]: 1}
