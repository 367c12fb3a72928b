"""OAuth 2.0 user-context tokens: refreshed before they expire, each refresh token spent once.

X's OAuth 2.0 access tokens last two hours and its refresh tokens rotate: a refresh
returns a new refresh token and invalidates the one spent. Two rules follow.

- The new tokens are written to the secret before the new access token is used. One
  window remains that no client can close: the process dies (or the write fails) after
  X answered and before the write finished. The secret then holds a spent refresh token,
  the next refresh is refused, and a person must re-authorize (the run fails with
  CredentialsRejected, so the credentials alarm says so).
- Only one process refreshes at a time. It takes a lease (a conditional write on
  ``#oauth-refresh`` in the ledger table, which lapses by itself if its holder dies),
  re-reads the secret bypassing every cache (someone may have refreshed meanwhile) and
  only then spends the refresh token. The others re-read the secret for a few seconds
  until it holds fresh tokens, or give up without spending anything.

The HTTP call to X's token endpoint is in courtesy.x_account; this module decides.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from courtesy.errors import CredentialsRejected, TokenRefreshInProgress
from courtesy.ledger import OAUTH_REFRESH_KEY, Ledger
from courtesy.ledger_store import KEY, Check, number
from courtesy.observability import logger
from courtesy.x_account import OAuth2Tokens, validate_oauth2_credentials

# Refresh when the access token has less than this left: a run must not start on a token
# that dies in the middle of it (a run lasts at most the Lambda timeout).
REFRESH_MARGIN_SECONDS = 5 * 60
# The lease outlives its holder's work: the token request (3 s to connect, 15 s to read)
# and the secret write (bounded timeouts and retries, see courtesy.app). A holder that
# dies lets it lapse; nobody else can spend the refresh token until then.
LEASE_SECONDS = 90
# A process that finds the lease held re-reads the secret this long before giving up.
WAIT_SECONDS = 8.0
POLL_SECONDS = 0.5


class Lease(Protocol):
    def take(self, now: float, seconds: float) -> bool: ...

    def release(self) -> bool: ...


class LedgerLease:
    """The refresh lease as an item of the ledger table (the role may write nothing else)."""

    def __init__(self, ledger: Ledger, holder: str | None = None):
        self._ledger = ledger
        self.holder = holder or uuid.uuid4().hex

    def take(self, now: float, seconds: float) -> bool:
        """Hold the lease until ``now + seconds``. False while another holder's lease is live."""
        free = ((Check(KEY, "absent"),), (Check("lease_until", "<=", number(now)),), (Check("holder", "=", self.holder),))
        return self._ledger.put_record(OAUTH_REFRESH_KEY, {"holder": self.holder, "lease_until": number(now + seconds)}, when=free)

    def release(self) -> bool:
        """Let go, if still ours (an update: the role may not delete items). A lapsed lease
        someone else holds now is left alone."""
        return self._ledger.update_record(OAUTH_REFRESH_KEY, {"lease_until": number(0)}, when=((Check("holder", "=", self.holder),),))


class TokenKeeper:
    """Hands out an OAuth 2.0 access token good for the whole run, refreshing it if need be.

    ``read`` returns the secret as stored now (no cache); ``write`` stores a whole secret;
    ``refresh`` spends a refresh token at X and returns the new tokens; ``now`` is epoch
    seconds on the clock X's expiry is measured by."""

    def __init__(
        self,
        *,
        read: Callable[[], Any],
        write: Callable[[dict[str, Any]], None],
        refresh: Callable[[OAuth2Tokens], OAuth2Tokens],
        lease: Lease,
        now: Callable[[], float],
        sleep: Callable[[float], None] = time.sleep,
        margin_seconds: float | None = None,
        lease_seconds: float | None = None,
        wait_seconds: float | None = None,
        poll_seconds: float | None = None,
    ):
        self._read, self._write, self._refresh = read, write, refresh
        self._lease, self._now, self._sleep = lease, now, sleep
        # The module's figures unless given (read here, so a test can change them).
        self._margin = REFRESH_MARGIN_SECONDS if margin_seconds is None else margin_seconds
        self._lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
        self._poll_seconds = POLL_SECONDS if poll_seconds is None else poll_seconds
        self._polls = max(1, math.ceil((WAIT_SECONDS if wait_seconds is None else wait_seconds) / self._poll_seconds))
        self.refreshed = False  # whether this keeper spent a refresh token

    def needs_refresh(self, tokens: OAuth2Tokens) -> bool:
        return tokens.expires_within(self._now(), self._margin)

    def fresh(self) -> OAuth2Tokens:
        tokens = self._current()
        if not self.needs_refresh(tokens):
            return tokens
        for attempt in range(self._polls + 1):
            if self._lease.take(self._now(), self._lease_seconds):
                try:
                    return self._refresh_holding_lease()
                finally:
                    self._lease.release()
            # Another process is refreshing: its tokens appear in the secret when it is done.
            tokens = self._current()
            if not self.needs_refresh(tokens):
                logger.info("Using OAuth 2.0 tokens another run refreshed")
                return tokens
            if attempt < self._polls:
                self._sleep(self._poll_seconds)
        raise TokenRefreshInProgress(
            "Another run is refreshing the OAuth 2.0 tokens and has not finished; this run spent nothing and stops "
            f"(a holder that died lets its lease lapse within {self._lease_seconds:.0f} s)"
        )

    def _current(self) -> OAuth2Tokens:
        return validate_oauth2_credentials(self._read())

    def _refresh_holding_lease(self) -> OAuth2Tokens:
        current = self._current()  # under the lease: what the secret holds now, not what this run read before
        if not self.needs_refresh(current):
            logger.info("Using OAuth 2.0 tokens another run refreshed")
            return current
        try:
            new = self._refresh(current)
        except CredentialsRejected:
            # A holder whose lease lapsed mid-refresh may have spent it and stored its answer.
            latest = self._current()
            if latest.refresh_token != current.refresh_token and not self.needs_refresh(latest):
                logger.info("Using OAuth 2.0 tokens another run refreshed")
                return latest
            raise
        self.refreshed = True
        try:
            self._write(new.as_secret())  # before anything uses the new access token
        except Exception as exc:  # noqa: BLE001 - whatever failed, the tokens X just issued are lost
            raise CredentialsRejected(
                f"X issued new OAuth 2.0 tokens but writing them to the secret failed ({_error_code(exc)}), so the "
                "refresh token in the secret is spent. Re-authorize the app and put the new tokens in the secret"
            ) from None
        logger.info("OAuth 2.0 access token refreshed and stored", extra={"expires_at": int(new.expires_at)})
        return new


def _error_code(exc: Exception) -> str:
    """An AWS error's code (botocore's ClientError carries it), else the exception's type: never its text."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code if isinstance(code, str) and code.isalnum() else type(exc).__name__
