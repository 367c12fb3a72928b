"""Recognising an opt-out: a message that, as a whole, asks Courtesy to stop.

Only the whole message counts ("stop" is an opt-out, "don't stop the good work" is
not), after case, punctuation, emoji and spacing are set aside. The words are the
usual opt-out keywords of automated messaging and their everyday variants.
"""

from __future__ import annotations

import unicodedata

OPT_OUT_PHRASES = frozenset(
    {
        "stop",
        "stop all",
        "stopall",
        "stop please",
        "please stop",
        "stop it",
        "stop messaging me",
        "stop messaging",
        "stop sending messages",
        "stop sending me messages",
        "stop dming me",
        "stop dm",
        "stop dms",
        "unsubscribe",
        "unsubscribe me",
        "please unsubscribe me",
        "unsub",
        "cancel",
        "end",
        "quit",
        "opt out",
        "optout",
        "opt me out",
        "remove me",
        "please remove me",
        "no more messages",
        "no more",
        "leave me alone",
        "dont message me",
        "do not message me",
    }
)


def normalize(text: str) -> str:
    """Lower case, letters and digits only, single spaces: "STOP!!", "Stop 🛑" and "stop." are "stop"."""
    kept = []
    for char in unicodedata.normalize("NFKC", text).casefold():
        if char.isalnum():
            kept.append(char)
        elif char in "'’":
            continue  # "don't" -> "dont"
        else:
            kept.append(" ")
    return " ".join("".join(kept).split())


def opt_out_word(text: str) -> str | None:
    """The normalized opt-out phrase the message is, or None if it is not an opt-out."""
    if not isinstance(text, str) or len(text) > 200:  # an opt-out is short; a long message is a conversation
        return None
    words = normalize(text)
    return words if words in OPT_OUT_PHRASES else None
