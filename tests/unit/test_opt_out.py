"""What counts as an opt-out: the whole message, whatever its case, punctuation or emoji."""

from __future__ import annotations

import pytest

from courtesy.opt_out import opt_out_word


@pytest.mark.parametrize(
    ("message", "word"),
    [
        ("STOP", "stop"),
        ("stop.", "stop"),
        ("  Stop!! ", "stop"),
        ("STOP 🛑", "stop"),
        ("Unsubscribe", "unsubscribe"),
        ("unsubscribe me please", None),
        ("Opt-out", "opt out"),
        ("OPTOUT", "optout"),
        ("stop all", "stop all"),
        ("Please stop", "please stop"),
        ("Don't message me.", "dont message me"),
        ("cancel", "cancel"),
        ("ＳＴＯＰ", "stop"),  # full-width letters
    ],
)
def test_opt_out_messages_are_recognised_whatever_their_case_and_punctuation(message, word):
    assert opt_out_word(message) == word


@pytest.mark.parametrize(
    "message",
    [
        "Don't stop what you're doing!",
        "Thanks! When does the sale end?",
        "stop by our shop sometime",
        "hi",
        "",
        "stop " * 100,
    ],
)
def test_messages_that_only_contain_an_opt_out_word_are_not_opt_outs(message):
    assert opt_out_word(message) is None
