"""Who gets welcomed: skip likely spam and throwaway accounts, spot notable followers.

Decided from the profile fields X returns in the same followers call, so filtering
costs no extra request. A field X did not return never causes a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from courtesy.domain import Follower, parse_time

# Why a follower was skipped: recorded in the ledger and counted in metrics.
DEFAULT_PROFILE_IMAGE = "default_profile_image"
NO_POSTS = "no_posts"
TOO_NEW = "too_new"
FOLLOWING_RATIO = "following_ratio"
PROTECTED = "protected"
FEW_FOLLOWERS = "few_followers"
BLOCKLISTED = "blocklisted"
DMS_CLOSED = "dms_closed"
# Mass-following is only suspicious at scale: small accounts often follow more than follow them.
FOLLOWING_RATIO_MIN_FOLLOWING = 1000


@dataclass(frozen=True)
class FollowerFilters:
    skip_default_profile_image: bool = True
    skip_no_posts: bool = True
    min_account_age_days: int = 7
    max_following_ratio: float = 50  # 0 turns the check off
    skip_protected: bool = False
    min_follower_count: int = 0
    blocked_ids: frozenset[str] = frozenset()
    blocked_usernames: frozenset[str] = frozenset()  # lower case, without "@"
    notable_follower_count: int = 10_000

    @staticmethod
    def parse_blocklist(raw: str) -> tuple[frozenset[str], frozenset[str]]:
        entries = [e.strip() for e in raw.split(",") if e.strip()]
        ids = frozenset(e for e in entries if e.isdigit())
        usernames = frozenset(e.lstrip("@").lower() for e in entries if not e.isdigit())
        return ids, usernames

    def is_blocked(self, follower_id: str, username: str) -> bool:
        return follower_id in self.blocked_ids or username.lower() in self.blocked_usernames

    def reason_to_skip(self, follower: Follower, now: datetime) -> str | None:
        profile = follower.profile
        metrics: dict[str, Any] = profile.get("public_metrics") or {}
        if self.is_blocked(follower.id, follower.username):
            return BLOCKLISTED
        if profile.get("receives_your_dm") is False:
            return DMS_CLOSED  # X says it would refuse the DM
        if self.skip_protected and profile.get("protected") is True:
            return PROTECTED
        if self.skip_default_profile_image and "default_profile_images" in str(profile.get("profile_image_url", "")):
            return DEFAULT_PROFILE_IMAGE
        posts = metrics.get("tweet_count", metrics.get("post_count"))
        if self.skip_no_posts and posts == 0:
            return NO_POSTS
        created = parse_time(profile.get("created_at"))
        if created is not None and now - created < timedelta(days=self.min_account_age_days):
            return TOO_NEW
        followers, following = metrics.get("followers_count"), metrics.get("following_count")
        if isinstance(followers, int) and followers < self.min_follower_count:
            return FEW_FOLLOWERS
        if (
            self.max_following_ratio
            and isinstance(following, int)
            and isinstance(followers, int)
            and following >= FOLLOWING_RATIO_MIN_FOLLOWING
            and following > self.max_following_ratio * max(followers, 1)
        ):
            return FOLLOWING_RATIO
        return None

    def is_notable(self, follower: Follower) -> bool:
        followers = (follower.profile.get("public_metrics") or {}).get("followers_count")
        return follower.profile.get("verified") is True or (isinstance(followers, int) and followers >= self.notable_follower_count)
