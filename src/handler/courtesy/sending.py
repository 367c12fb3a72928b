"""Sending one DM, and what its outcome means: one classification for every send.

X's answer to a DM request is one of: provably not sent (rate limited, X unavailable),
sent, maybe sent (the request left, no answer came back), refused for this recipient,
refused for this message, or refused for the credentials or the app (a person must
fix them). Welcomes (courtesy.welcoming) and opt-out confirmations
(courtesy.confirmations) map each outcome to their own ledger transitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn

from courtesy.errors import (
    AppNotPermitted,
    CourtesyError,
    CredentialsRejected,
    MessageRejected,
    RateLimited,
    RecipientCannotBeMessaged,
    SendOutcomeUnknown,
    XUnavailable,
)
from courtesy.ledger import Ledger, Meta
from courtesy.observability import logger

if TYPE_CHECKING:
    from courtesy.x_account import XAccount

# When X gives no reset time, wait this long before sending again (one DM window).
DEFAULT_DM_BACKOFF_SECONDS = 15 * 60


class Outcome(Enum):
    NOT_SENT = "not sent"  # provably not sent (RateLimited, XUnavailable): safe to send later
    SENT = "sent"
    UNKNOWN = "unknown"  # the request left and no answer came back: maybe sent, never resent blindly
    RECIPIENT_REFUSED = "recipient refused"  # X refused this recipient (RecipientCannotBeMessaged)
    MESSAGE_REFUSED = "message refused"  # X refused the message itself (MessageRejected)
    PERSON_NEEDED = "person needed"  # the credentials or the app were refused: not sent; a person must act


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    dm_event_id: str | None = None  # SENT: X's id for the message, if its answer gave one
    error: CourtesyError | None = None  # every outcome but SENT: what X's answer raised

    @property
    def rate_limited(self) -> RateLimited | None:
        """NOT_SENT because of a rate limit: the limit, for the backoff."""
        return self.error if isinstance(self.error, RateLimited) else None

    def reraise(self) -> NoReturn:
        """PERSON_NEEDED: raise the error again (after the caller recorded "not sent"), so the
        run fails for a person to fix it."""
        raise self.error if self.error is not None else CourtesyError(f"DM {self.outcome.value}")


def send(x: XAccount, recipient_id: str, text: str) -> SendResult:
    """Send one DM and classify the outcome. Errors outside the classification propagate."""
    try:
        dm_event_id = x.send_dm(recipient_id, text)
    except (RateLimited, XUnavailable) as exc:
        return SendResult(Outcome.NOT_SENT, error=exc)
    except SendOutcomeUnknown as exc:
        return SendResult(Outcome.UNKNOWN, error=exc)
    except RecipientCannotBeMessaged as exc:
        return SendResult(Outcome.RECIPIENT_REFUSED, error=exc)
    except MessageRejected as exc:
        return SendResult(Outcome.MESSAGE_REFUSED, error=exc)
    except (CredentialsRejected, AppNotPermitted) as exc:
        return SendResult(Outcome.PERSON_NEEDED, error=exc)
    return SendResult(Outcome.SENT, dm_event_id=dm_event_id)


@dataclass
class SendReport:
    """What the sending part of a run did (welcomes, opt-out confirmations), for its summary."""

    welcomed: int = 0
    failed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    confirmations_sent: int = 0
    departed: int = 0
    presence_lookups: int = 0
    rate_limited: bool = False
    account_refused: bool = False  # sending stopped: X refused the account or app, not recipients
    account_refused_runs: int = 0  # consecutive runs stopped that way
    would_welcome: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count_skip(self, reason: str, by: int = 1) -> None:
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + by
        if not self.skipped_by_reason[reason]:
            del self.skipped_by_reason[reason]


@dataclass
class Sender:
    """What the sends of one run share: the adapters, the run, its meta (daily count, DM
    backoff) and its report."""

    x: XAccount
    ledger: Ledger
    now: Callable[[], datetime]
    run_id: str
    meta: Meta
    report: SendReport
    sleep: Callable[[float], None] = time.sleep  # waiting for X's DM window to reset (simulations move a clock)
    # Delivery "webhook": wake_up(account id, epoch time) asks for an invocation then (X's DM
    # window reset). None: no wake-ups.
    wake_up: Callable[[str, float], None] | None = None

    def send(self, recipient_id: str, text: str) -> SendResult:
        return send(self.x, recipient_id, text)

    def rate_limit_spent(self) -> RateLimited | None:
        """X's headers say no DM can be sent now (no request made)."""
        return self.x.dm_sends_spent()

    def count_sent(self) -> None:
        """Counted in the ledger after every send (atomically: events and a scheduled run may
        send at once); the meta then holds the count with every sender's sends in it."""
        meta = self.meta
        meta.daily_day, meta.daily_count = self.ledger.count_send(meta.daily_day, new_day=meta.daily_count == 0)

    def stop_for_rate_limit(self, exc: RateLimited) -> bool:
        """Wait for X's DM window to reset. Returns False: sending stops for this run."""
        reset_at = exc.reset_at or (self.now() + timedelta(seconds=DEFAULT_DM_BACKOFF_SECONDS)).timestamp()
        self.meta.dm_blocked_until = reset_at
        self.report.rate_limited = True
        self.report.notes.append(f"stopped sending: {exc}")
        logger.info("DM rate limit reached; the queue waits", extra={"reset_at": reset_at, "usage_capped": exc.usage_capped})
        return False
