"""Welcome message templates: validated up front, chosen per follower, rendered.

The choice depends only on the follower's id, so a retry or a rerun picks the
same words, and different followers get different ones.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass

from courtesy.errors import ConfigurationError
from courtesy.x_limits import DM_TEXT_LIMIT

# X display names are at most 50 characters, usernames 15; leave room for both.
_LONGEST_RENDERED_FIELD = 50
PLACEHOLDERS = ("name", "first_name", "username")

DEFAULT_TEMPLATES = (
    "Hi {first_name}, thanks for the follow! Really glad to have you here.",
    "Thanks for following, {first_name}! If there's ever anything we can help with, just reply to this message.",
    "Hey @{username}, thanks for the follow. Nice to meet you!",
    "Welcome aboard, {first_name}, and thank you for following. Say hi any time.",
)

# For notable followers (verified, or many followers of their own): warmer, and an invitation to talk.
DEFAULT_NOTABLE_TEMPLATES = (
    "Hi {first_name}, thank you so much for the follow, it genuinely made our day. "
    "If there's anything we can do for you, just reply here: a real person reads every message.",
    "{first_name}, thanks for following! We'd love to hear what brought you here; reply any time and one of us will answer.",
)

# Reply mode, for people who write to the account without following it (if enabled):
# nothing about a follow, which did not happen.
DEFAULT_NON_FOLLOWER_TEMPLATES = ("Hi {first_name}, thanks for getting in touch! A real person reads every message here.",)

# The one answer to an opt-out ("stop"): short, and the last message they get.
DEFAULT_OPT_OUT_REPLY = "Got it, {first_name}: you won't get any more automated messages from us."


@dataclass(frozen=True)
class Welcome:
    template_id: str
    text: str


def _placeholders(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # unbalanced braces
        raise ConfigurationError(f"Welcome template {template[:40]!r} is malformed: {exc}") from exc
    fields = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion:
            raise ConfigurationError(f"Welcome template {template[:40]!r}: write placeholders plainly, as {{{field}}}")
        fields.append(field)
    return fields


def _validate(template: str) -> None:
    if not isinstance(template, str) or not template.strip():
        raise ConfigurationError("Welcome templates must be non-empty strings")
    for field in _placeholders(template):
        if field not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ConfigurationError(
                f"Welcome template {template[:40]!r} uses unknown placeholder {{{field}}}; allowed: {allowed}"
                " (write {{ and }} for literal braces)"
            )
    worst_case = len(template) + _LONGEST_RENDERED_FIELD * len(_placeholders(template))
    if worst_case > DM_TEXT_LIMIT:
        raise ConfigurationError(f"Welcome template {template[:40]!r} can exceed X's {DM_TEXT_LIMIT}-character DM limit")


def _template_id(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class MessageTemplates:
    templates: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.templates:
            raise ConfigurationError("At least one welcome template is needed")
        for template in self.templates:
            _validate(template)

    @classmethod
    def from_setting(cls, raw: str, *, name: str = "WELCOME_TEMPLATES", defaults: tuple[str, ...] = DEFAULT_TEMPLATES) -> MessageTemplates:
        """Parse a templates setting: a JSON array of strings, or empty for the defaults."""
        if not raw or not raw.strip():
            return cls(defaults)
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{name} must be a JSON array of strings: {exc.msg}") from exc
        if not isinstance(parsed, list) or not all(isinstance(t, str) for t in parsed):
            raise ConfigurationError(f"{name} must be a JSON array of strings")
        return cls(tuple(parsed))

    def for_follower(self, follower_id: str, *, name: str, username: str) -> Welcome:
        digest = hashlib.sha256(follower_id.encode()).digest()
        template = self.templates[int.from_bytes(digest[:8], "big") % len(self.templates)]
        display = " ".join(name.split()) or username or "there"  # "Hi there" when X gave no name
        text = template.format(name=display, first_name=display.split(" ")[0], username=username)
        return Welcome(template_id=_template_id(template), text=text[:DM_TEXT_LIMIT])
