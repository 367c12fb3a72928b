"""Configuration: read from the environment once, validated, then passed as values.

This is the only module of the scheduled function that reads ``os.environ``; the webhook
receiver (courtesy.webhook_receiver, its own small function) reads its two variables itself,
so that it imports nothing it does not need.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from courtesy.errors import ConfigurationError
from courtesy.filters import FollowerFilters
from courtesy.messages import (
    DEFAULT_NON_FOLLOWER_TEMPLATES,
    DEFAULT_NOTABLE_TEMPLATES,
    DEFAULT_OPT_OUT_REPLY,
    MessageTemplates,
)
from courtesy.x_limits import DM_SEND_PER_15_MIN, DM_SEND_PER_24_H

BASELINE_MODES = ("newest-page", "full")
# dm: a welcome DM to each new follower. reply: a welcome only in answer to a follower's
# first message (what X's guidelines allow). digest: no automated DM; a daily list for a person.
WELCOME_MODES = ("dm", "reply", "digest")
# The kind of X credentials the stack was deployed for (template parameter XAuthType): only
# "oauth2" lets the function write rotated tokens back to the secret. "" = not declared.
X_AUTH_TYPES = ("oauth1", "oauth2")
# Below X's 1,440 DMs per 24 h, so the people running the account can still send their own.
DEFAULT_DAILY_WELCOME_LIMIT = 1000
X_DEFAULT_BASE_URL = "https://api.twitter.com"
# X's own API hosts: the credentials may go to these without X_API_ALLOW_OTHER_HOST.
X_API_HOSTS = ("api.twitter.com", "api.x.com")
# Plain http is allowed only to this machine (a local sandbox): 127.0.0.0/8, ::1 and localhost.
LOOPBACK_NAMES = ("localhost",)


def x_api_origin(base_url: str) -> str:
    """scheme://host[:port] of a base URL: what logs and messages name (never a user, password,
    path or query, which could carry a secret)."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def is_x_api_host(base_url: str) -> bool:
    """True when the base URL's host is one of X's own API hosts."""
    try:
        host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return host in X_API_HOSTS


def is_loopback_host(host: str) -> bool:
    host = host.rstrip(".").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(base_url: str, *, allow_other_host: bool) -> str | None:
    """Why the X credentials must not go to this base URL, or None. Names the URL's origin only."""
    shown = x_api_origin(base_url)
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "X_API_BASE_URL is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"X_API_BASE_URL must start with http:// or https://, got {shown!r}"
    if not host:
        return "X_API_BASE_URL has no host"
    if parts.username is not None or parts.password is not None:
        return f"X_API_BASE_URL must not carry a user name or password (host {shown})"
    if parts.query or parts.fragment:
        return f"X_API_BASE_URL must not have a query or fragment (host {shown})"
    if parts.scheme == "http" and not is_loopback_host(host):
        return (
            f"X_API_BASE_URL {shown} uses plain http to a host that is not this machine: the X credentials would cross "
            "the network unencrypted. Use https (http is allowed only to 127.0.0.0/8, ::1 or localhost)"
        )
    if not is_x_api_host(base_url) and not allow_other_host:
        return (
            f"X_API_BASE_URL {shown} is not X's API ({', '.join(X_API_HOSTS)}), and the X credentials would be sent there. "
            "If that is intended (a local sandbox, X's API playground), set X_API_ALLOW_OTHER_HOST=true "
            "(template parameter XApiAllowOtherHost)"
        )
    return None


@dataclass(frozen=True)
class Settings:
    ledger_table: str
    idempotency_table: str
    credentials_secret_id: str
    dry_run: bool
    max_welcomes_per_run: int
    daily_welcome_limit: int
    templates: MessageTemplates
    baseline_mode: str
    x_api_base_url: str
    filters: FollowerFilters = FollowerFilters()
    # True only when X_API_ALLOW_OTHER_HOST=true: the credentials may go to a host that is not X's.
    x_api_allow_other_host: bool = False
    x_auth_type: str = ""
    notable_templates: MessageTemplates = MessageTemplates(DEFAULT_NOTABLE_TEMPLATES)
    welcome_mode: str = "dm"
    reply_to_non_followers: bool = False
    non_follower_templates: MessageTemplates = MessageTemplates(DEFAULT_NON_FOLLOWER_TEMPLATES)
    opt_out_reply: MessageTemplates = MessageTemplates((DEFAULT_OPT_OUT_REPLY,))
    digest_topic_arn: str = ""

    @property
    def x_api_origin(self) -> str:
        """The X API's scheme://host[:port], as logs and the CLI name it."""
        return x_api_origin(self.x_api_base_url)

    @property
    def x_api_other_host(self) -> bool:
        """True when the credentials go to a host that is not X's own API (allowed explicitly)."""
        return not is_x_api_host(self.x_api_base_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is not set")
            return value

        def number(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name, "").strip() or str(default)
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name} must be a whole number, got {raw!r}")
                return default
            if not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, got {value}")
            return value

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if raw not in ("", "true", "false"):
                problems.append(f"{name} must be 'true' or 'false', got {raw!r}")
            return default if raw not in ("true", "false") else raw == "true"

        dry_run_raw = env.get("DRY_RUN", "true").strip().lower() or "true"
        if dry_run_raw not in ("true", "false"):
            problems.append(f"DRY_RUN must be 'true' or 'false', got {dry_run_raw!r}")
        baseline_mode = env.get("BASELINE_MODE", "").strip() or "newest-page"
        if baseline_mode not in BASELINE_MODES:
            problems.append(f"BASELINE_MODE must be one of {', '.join(BASELINE_MODES)}, got {baseline_mode!r}")
        base_url = (env.get("X_API_BASE_URL", "").strip() or X_DEFAULT_BASE_URL).rstrip("/")
        allow_other_host = flag("X_API_ALLOW_OTHER_HOST", False)
        if problem := base_url_problem(base_url, allow_other_host=allow_other_host):
            problems.append(problem)

        templates = notable_templates = None
        try:
            templates = MessageTemplates.from_setting(env.get("WELCOME_TEMPLATES", ""))
        except ConfigurationError as exc:
            problems.append(str(exc))
        try:
            notable_templates = MessageTemplates.from_setting(
                env.get("NOTABLE_TEMPLATES", ""), name="NOTABLE_TEMPLATES", defaults=DEFAULT_NOTABLE_TEMPLATES
            )
        except ConfigurationError as exc:
            problems.append(str(exc).replace("Welcome template", "Notable template"))
        non_follower_templates = opt_out_reply = None
        try:
            non_follower_templates = MessageTemplates.from_setting(
                env.get("NON_FOLLOWER_TEMPLATES", ""), name="NON_FOLLOWER_TEMPLATES", defaults=DEFAULT_NON_FOLLOWER_TEMPLATES
            )
        except ConfigurationError as exc:
            problems.append(str(exc).replace("Welcome template", "Non-follower template"))
        try:
            # One text, not a list: a single confirmation, the same for everyone.
            opt_out_reply = MessageTemplates((env.get("OPT_OUT_REPLY", "").strip() or DEFAULT_OPT_OUT_REPLY,))
        except ConfigurationError as exc:
            problems.append("OPT_OUT_REPLY: " + str(exc).replace("Welcome template", "the template"))
        welcome_mode = env.get("WELCOME_MODE", "").strip().lower() or "dm"
        if welcome_mode not in WELCOME_MODES:
            problems.append(f"WELCOME_MODE must be one of {', '.join(WELCOME_MODES)}, got {welcome_mode!r}")
        x_auth_type = env.get("X_AUTH_TYPE", "").strip().lower()
        if x_auth_type and x_auth_type not in X_AUTH_TYPES:
            problems.append(f"X_AUTH_TYPE must be one of {', '.join(X_AUTH_TYPES)}, got {x_auth_type[:20]!r}")
        digest_topic_arn = env.get("DIGEST_TOPIC_ARN", "").strip()
        if welcome_mode == "digest" and not digest_topic_arn.startswith("arn:"):
            problems.append("WELCOME_MODE is digest but DIGEST_TOPIC_ARN is not an SNS topic ARN")
        blocked_ids, blocked_usernames = FollowerFilters.parse_blocklist(env.get("BLOCKLIST", ""))
        filters = FollowerFilters(
            skip_default_profile_image=flag("SKIP_DEFAULT_PROFILE_IMAGE", True),
            skip_no_posts=flag("SKIP_NO_POSTS", True),
            min_account_age_days=number("MIN_ACCOUNT_AGE_DAYS", 7, 0, 3650),
            max_following_ratio=number("MAX_FOLLOWING_RATIO", 50, 0, 100_000),
            skip_protected=flag("SKIP_PROTECTED", False),
            min_follower_count=number("MIN_FOLLOWER_COUNT", 0, 0, 10**9),
            blocked_ids=blocked_ids,
            blocked_usernames=blocked_usernames,
            notable_follower_count=number("NOTABLE_FOLLOWER_COUNT", 10_000, 1, 10**9),
        )

        settings = cls(
            ledger_table=required("LEDGER_TABLE_NAME"),
            idempotency_table=required("IDEMPOTENCY_TABLE_NAME"),
            credentials_secret_id=required("X_CREDENTIALS_SECRET_ID"),
            # Anything but an explicit "false" stays a dry run: going live is deliberate.
            dry_run=dry_run_raw != "false",
            max_welcomes_per_run=number("MAX_WELCOMES_PER_RUN", DM_SEND_PER_15_MIN, 1, 1000),
            daily_welcome_limit=number("DAILY_WELCOME_LIMIT", DEFAULT_DAILY_WELCOME_LIMIT, 1, DM_SEND_PER_24_H),
            templates=templates,  # type: ignore[arg-type]  # None only when problems is non-empty
            baseline_mode=baseline_mode,
            x_api_base_url=base_url,
            filters=filters,
            x_api_allow_other_host=allow_other_host,
            x_auth_type=x_auth_type,
            notable_templates=notable_templates,  # type: ignore[arg-type]
            welcome_mode=welcome_mode,
            reply_to_non_followers=flag("REPLY_TO_NON_FOLLOWERS", False),
            non_follower_templates=non_follower_templates,  # type: ignore[arg-type]
            opt_out_reply=opt_out_reply,  # type: ignore[arg-type]
            digest_topic_arn=digest_topic_arn,
        )
        if problems:
            raise ConfigurationError("Invalid configuration: " + "; ".join(problems))
        return settings
