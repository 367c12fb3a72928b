"""Who gets welcomed: likely spam and throwaway accounts are skipped, notable followers spotted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from courtesy.domain import Follower
from courtesy.filters import FollowerFilters

NOW = datetime(2026, 11, 26, tzinfo=UTC)
ORDINARY = {
    "created_at": "2021-05-01T00:00:00.000Z",
    "profile_image_url": "https://pbs.twimg.com/profile_images/1/photo_normal.jpg",
    "protected": False,
    "verified": False,
    "receives_your_dm": True,
    "public_metrics": {"followers_count": 40, "following_count": 120, "tweet_count": 300},
}


def follower(**changes) -> Follower:
    profile = {**ORDINARY, **changes}
    if "metrics" in changes:
        profile["public_metrics"] = {**ORDINARY["public_metrics"], **profile.pop("metrics")}
    return Follower("42", "someone", "Some One", profile)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({}, None),
        ({"profile_image_url": "https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png"}, "default_profile_image"),
        ({"metrics": {"tweet_count": 0}}, "no_posts"),
        ({"created_at": "2026-11-24T00:00:00.000Z"}, "too_new"),
        ({"metrics": {"followers_count": 10, "following_count": 4000}}, "following_ratio"),
        ({"metrics": {"followers_count": 10, "following_count": 400}}, None),  # small accounts often follow more
        ({"receives_your_dm": False}, "dms_closed"),
        ({"protected": True}, None),  # protected accounts are welcome unless configured otherwise
    ],
)
def test_the_default_filters(changes, reason):
    assert FollowerFilters().reason_to_skip(follower(**changes), NOW) == reason


def test_a_profile_without_the_fields_is_never_skipped():
    assert FollowerFilters().reason_to_skip(Follower("1", "a", "A"), NOW) is None


def test_optional_filters_and_the_blocklist():
    ids, usernames = FollowerFilters.parse_blocklist(" 42 , @SomeOne,other ")
    assert ids == {"42"} and usernames == {"someone", "other"}
    strict = FollowerFilters(skip_protected=True, min_follower_count=100)
    assert strict.reason_to_skip(follower(protected=True), NOW) == "protected"
    assert strict.reason_to_skip(follower(), NOW) == "few_followers"
    assert FollowerFilters(blocked_usernames=usernames).reason_to_skip(follower(), NOW) == "blocklisted"
    off = FollowerFilters(skip_default_profile_image=False, skip_no_posts=False, min_account_age_days=0, max_following_ratio=0)
    spammy = follower(
        profile_image_url="https://abs.twimg.com/sticky/default_profile_images/x.png",
        created_at="2026-11-25T23:00:00.000Z",
        metrics={"tweet_count": 0, "followers_count": 0, "following_count": 5000},
    )
    assert off.reason_to_skip(spammy, NOW) is None


def test_notable_followers_are_verified_or_well_followed():
    filters = FollowerFilters(notable_follower_count=10_000)
    assert filters.is_notable(follower(verified=True))
    assert filters.is_notable(follower(metrics={"followers_count": 25_000}))
    assert not filters.is_notable(follower())
