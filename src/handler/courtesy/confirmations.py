"""Opt-out confirmations: each person who opted out after a message from Courtesy gets one
short answer, at most once (a send whose outcome is unknown is never repeated: none is
better than two). Sent before any welcome, within the same limits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from courtesy.domain import Follower, iso
from courtesy.ledger import detail
from courtesy.lifecycle import Confirmation, Queue
from courtesy.messages import MessageTemplates
from courtesy.observability import logger
from courtesy.sending import Outcome, Sender

# What a refused send means for the confirmation.
REFUSED = {Outcome.RECIPIENT_REFUSED: Confirmation.UNDELIVERABLE, Outcome.MESSAGE_REFUSED: Confirmation.FAILED}


def confirm_opt_outs(
    sender: Sender,
    *,
    reply: MessageTemplates,
    present: Mapping[str, Follower],
    out_of_time: Callable[[], bool],
    dry_run: bool,
    room: int,
) -> tuple[int, bool]:
    """Send each new opt-out its one confirmation, before any welcome. Returns the sends
    used, and whether sending may go on this run."""
    ledger, report, run_id = sender.ledger, sender.report, sender.run_id
    used = 0
    for entry in ledger.queued(Queue.OPT_OUT_CONFIRM, limit=room):
        if dry_run or out_of_time():
            break
        if spent := sender.rate_limit_spent():
            return used, sender.stop_for_rate_limit(spent)
        fields = {"confirmation": Confirmation.SENDING, "run_id": run_id, "confirm_claimed_at": iso(sender.now())}
        if not ledger.move("claim_confirmation", entry.follower_id, fields=fields):
            continue
        current = present.get(entry.follower_id)
        name, username = (current.name, current.username) if current else (entry.name, entry.username)
        text = reply.for_follower(entry.follower_id, name=name, username=username).text
        result = sender.send(entry.follower_id, text)
        outcome, why = Confirmation.SENT, ""
        if result.outcome is Outcome.NOT_SENT:
            _settle(sender, entry.follower_id, Confirmation.DUE, str(result.error))
            if limited := result.rate_limited:
                return used, sender.stop_for_rate_limit(limited)
            report.notes.append(f"stopped sending: {result.error}")
            return used, False
        if result.outcome is Outcome.UNKNOWN:
            # Left "sending": maybe sent, and never sent again.
            report.notes.append(f"stopped sending: {result.error}")
            logger.warning("Opt-out confirmation outcome unknown; not resending", extra={"follower_id": entry.follower_id})
            return used, False
        if result.outcome is Outcome.PERSON_NEEDED:
            _settle(sender, entry.follower_id, Confirmation.DUE)
            result.reraise()
        if result.outcome in REFUSED:
            outcome, why = REFUSED[result.outcome], str(result.error)
        _settle(sender, entry.follower_id, outcome, why)
        if outcome == Confirmation.SENT:
            used += 1
            sender.count_sent()
            report.confirmations_sent += 1
            logger.info("Opt-out confirmed", extra={"follower_id": entry.follower_id})
    return used, True


def _settle(sender: Sender, person_id: str, outcome: Confirmation, why: str = "") -> bool:
    """Sent, undeliverable or failed; or back to due (and the queue) when provably not sent."""
    now = iso(sender.now())
    due = outcome == Confirmation.DUE
    fields = {"confirmation": outcome, "confirmation_at": now, "confirmation_detail": detail(why), **({"queued_at": now} if due else {})}
    return sender.ledger.move(
        "settle_confirmation", person_id, run_id=sender.run_id, fields=fields, queue=Queue.OPT_OUT_CONFIRM if due else None
    )
