"""Refused welcomes: the recipient's problem, or the account's?

X refusing a send is recorded at once as that recipient's (or message's) problem, never
retried; but refusals in the same way (status and problem) to several different
recipients in a row are X refusing the account or app: those are put back in the queue
and sending stops. The streak lives in the ledger's meta, so it spans runs.
"""

from __future__ import annotations

from courtesy.domain import iso, queue_key
from courtesy.filters import DMS_CLOSED
from courtesy.ledger import detail
from courtesy.lifecycle import Queue, State
from courtesy.observability import logger
from courtesy.sending import Outcome, Sender, SendResult

# This many sends in a row refused in the same way (status and problem), to different
# recipients, means X refuses the account or app, not them: stop, and put them back.
ACCOUNT_REFUSAL_STREAK = 3


class RefusalStreak:
    """One run's view of the refusal streak (make one per run)."""

    def __init__(self, sender: Sender, *, requeue_to: Queue, started: str):
        self.sender = sender
        self.requeue_to = requeue_to  # the queue the mode welcomes from
        self.started = started  # the run's time: the requeued go to the end of the queue
        self._written_off: dict[str, str] = {}  # refused this run: follower id -> skip reason ("" = failed)

    def refused(self, follower_id: str, result: SendResult) -> bool:
        """Record a refused welcome (RECIPIENT_REFUSED or MESSAGE_REFUSED), and judge the
        streak. Returns False when sending must stop for this run."""
        meta, report, ledger = self.sender.meta, self.sender.report, self.sender.ledger
        exc = result.error
        recipient = result.outcome is Outcome.RECIPIENT_REFUSED
        state = State.UNDELIVERABLE if recipient else State.FAILED
        run_id, now = self.sender.run_id, iso(self.sender.now())
        fields = {"detail": detail(str(exc)), "closed_at": now}
        if recipient:
            ledger.move("mark_undeliverable", follower_id, run_id=run_id, fields=fields)
            report.count_skip(DMS_CLOSED)
            logger.info("Recipient cannot be messaged", extra={"follower_id": follower_id, "reason": str(exc)})
        else:
            ledger.move("mark_failed", follower_id, run_id=run_id, fields=fields)
            report.failed += 1
            logger.error("X rejected the welcome message", extra={"follower_id": follower_id, "reason": str(exc)})
        self._written_off[follower_id] = DMS_CLOSED if recipient else ""
        signature = f"{type(exc).__name__}: {exc}"
        if signature == meta.account_refusal:
            # Refused just as the account was in an earlier run: this send was the probe.
            return self._account_refused(signature, [[follower_id, state]])
        people = meta.refusals.get("people", []) if meta.refusals.get("signature") == signature else []
        people = [p for p in people if p[0] != follower_id] + [[follower_id, state]]
        meta.refusals = {"signature": signature, "people": people}
        if len(people) >= ACCOUNT_REFUSAL_STREAK:
            return self._account_refused(signature, people)
        return True

    def sent(self) -> None:
        """X took a message: whatever was refused before was about those recipients."""
        meta = self.sender.meta
        meta.refusals, meta.account_refusal, meta.account_refused_runs = {}, "", 0

    def _account_refused(self, signature: str, people: list[list[str]]) -> bool:
        """Put the followers of a refusal streak back in the queue (at its end, so a streak that
        was really about them cannot block the others) and stop sending for this run."""
        meta, report, ledger = self.sender.meta, self.sender.report, self.sender.ledger
        queue, now = self.requeue_to, iso(self.sender.now())
        for follower_id, state in people:
            fields = {"queued_at": queue_key(self.started, 0), "reopened_at": now, "reopened_from": state}
            if ledger.move("reopen_refused", follower_id, expected=state, queue=queue, fields=fields):
                self._uncount(follower_id)
        meta.refusals, meta.account_refusal = {}, signature
        meta.account_refused_runs += 1
        report.account_refused = True
        report.account_refused_runs = meta.account_refused_runs
        report.notes.append(
            f"stopped sending: X refused {len(people)} recipients in a row in the same way ({signature}); a problem of the "
            "account or app, not of them: they wait in the queue"
        )
        logger.error(
            "X refuses the account's DMs; sending stopped",
            extra={"refusal": signature, "followers_requeued": len(people), "runs_in_a_row": meta.account_refused_runs},
        )
        return False

    def _uncount(self, follower_id: str) -> None:
        """A follower counted as skipped or failed this run who went back to the queue."""
        if follower_id not in self._written_off:
            return
        reason = self._written_off.pop(follower_id)
        if reason:
            self.sender.report.count_skip(reason, by=-1)
        else:
            self.sender.report.failed -= 1
