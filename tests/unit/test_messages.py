"""Welcome templates: checked before anything is sent, chosen the same way every time."""

from __future__ import annotations

import json

import pytest

from courtesy.errors import ConfigurationError
from courtesy.messages import DEFAULT_TEMPLATES, DM_TEXT_LIMIT, MessageTemplates


def test_the_defaults_are_several_and_valid():
    templates = MessageTemplates.from_setting("")
    assert templates.templates == DEFAULT_TEMPLATES and len(DEFAULT_TEMPLATES) >= 3


def test_a_follower_always_gets_the_same_template_and_followers_get_different_ones():
    templates = MessageTemplates.from_setting("")
    first = templates.for_follower("123", name="Ada Lovelace", username="ada")
    assert templates.for_follower("123", name="Ada Lovelace", username="ada") == first
    chosen = {templates.for_follower(str(i), name="A", username="a").template_id for i in range(200)}
    assert len(chosen) == len(DEFAULT_TEMPLATES)


def test_placeholders_are_filled_and_braces_in_names_are_just_text():
    templates = MessageTemplates.from_setting(json.dumps(["Hi {first_name} ({name}, @{username}) {{literally}}"]))
    welcome = templates.for_follower("1", name="  Ada   {username} Lovelace ", username="ada")
    assert welcome.text == "Hi Ada (Ada {username} Lovelace, @ada) {literally}"


def test_an_empty_display_name_falls_back_to_the_username():
    templates = MessageTemplates.from_setting(json.dumps(["Hi {first_name}!"]))
    assert templates.for_follower("1", name="   ", username="ada").text == "Hi ada!"


@pytest.mark.parametrize(
    "setting, problem",
    [
        (json.dumps(["Hi {nickname}"]), r"unknown placeholder \{nickname\}"),
        (json.dumps(["Hi {name.__class__}"]), "unknown placeholder"),
        (json.dumps(["Hi {0}"]), "unknown placeholder"),
        (json.dumps(["Hi {name!r}"]), "write placeholders plainly"),
        (json.dumps(["Hi {name"]), "malformed"),
        (json.dumps(["   "]), "non-empty"),
        (json.dumps([]), "At least one"),
        (json.dumps(["x" * (DM_TEXT_LIMIT + 1)]), "10000-character"),
        (json.dumps(["x" * (DM_TEXT_LIMIT - 10) + "{name}"]), "can exceed"),
        (json.dumps({"a": "b"}), "JSON array of strings"),
        (json.dumps([1, 2]), "JSON array of strings"),
        ("[unterminated", "JSON array of strings"),
    ],
)
def test_a_bad_template_is_a_clear_error(setting, problem):
    with pytest.raises(ConfigurationError, match=problem):
        MessageTemplates.from_setting(setting)
