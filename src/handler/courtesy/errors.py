"""The few things that can go wrong, in the product's own words.

Adapters translate library exceptions into these; the welcome cycle decides
what each one means for the run. Messages never carry credential values.
"""

from __future__ import annotations


class CourtesyError(Exception):
    """Base class for every error Courtesy raises on purpose."""


# --- Problems a person must fix: the run fails so an alarm can fire. ---------


class PersonNeeded(CourtesyError):
    """Base class of the failures only a person can fix: they fail the run on purpose, and the
    handler tells a person (the PersonNeeded metric and its alarm)."""


class ConfigurationError(PersonNeeded):
    """A setting is missing or invalid (environment, templates)."""


class InvalidEvent(CourtesyError):
    """The invocation event is not one Courtesy understands."""


class CredentialsMissing(PersonNeeded):
    """The credentials secret is absent, unreadable or still holds placeholders."""


class CredentialsRejected(PersonNeeded):
    """X answered 401: the keys or tokens are wrong or revoked."""


class AppNotPermitted(PersonNeeded):
    """X answered 403 for the app itself (e.g. no Direct Message permission)."""


class DigestNotPublished(CourtesyError):
    """SNS refused the digest (or could not be reached): its followers wait for the next one."""


class LedgerUnavailable(CourtesyError):
    """DynamoDB kept refusing: the run stops; everything written so far stands."""


# --- Ordinary conditions: the run records them and finishes cleanly. ---------


class RateLimited(CourtesyError):
    """X answered 429, or its headers say the window is spent."""

    def __init__(self, message: str, *, reset_at: float | None = None, usage_capped: bool = False):
        super().__init__(message)
        self.reset_at = reset_at
        self.usage_capped = usage_capped


class TokenRefreshInProgress(CourtesyError):
    """Another process holds the OAuth 2.0 refresh lease and has not finished: nothing was spent."""


class XUnavailable(CourtesyError):
    """X did not accept the request (5xx, refused connection): safe to try later."""


class UnexpectedAnswer(CourtesyError):
    """X answered with a shape Courtesy does not understand."""


class RecipientCannotBeMessaged(CourtesyError):
    """X refused this one recipient (403/404): never retried."""


class MessageRejected(CourtesyError):
    """X refused the message itself (400): retrying the same text would fail again."""


class SendOutcomeUnknown(CourtesyError):
    """The request left but no answer came back: the DM may or may not exist."""
