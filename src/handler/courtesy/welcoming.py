"""Welcoming the queue: oldest first, once X confirms each still follows, within the
per-run cap, the daily limit, X's rate limits and the time left: claim, send, record.

Opt-out confirmations go first (courtesy.confirmations), within the same limits. A
dry run previews each welcome instead and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from courtesy.confirmations import confirm_opt_outs
from courtesy.domain import Follower, iso
from courtesy.filters import BLOCKLISTED, DMS_CLOSED, PROTECTED
from courtesy.ledger import Entry, Meta, detail
from courtesy.messages import MessageTemplates
from courtesy.observability import logger
from courtesy.policy import ModePolicy, is_message_sender
from courtesy.presence import confirm_following
from courtesy.refusals import RefusalStreak
from courtesy.sending import Outcome, Sender, SendReport

if TYPE_CHECKING:
    from courtesy.settings import Settings

# Rounds of presence lookups per run: a round whose candidates turn out to have left is
# followed by another, so departures do not leave a run's sending room unused.
PRESENCE_ROUNDS_PER_RUN = 3
# A window that resets this close to a run's start is waited for: X's windows start at the
# first request, a second or two after the schedule's tick, and skipping a whole schedule
# interval for those seconds would halve the welcome rate; sending before the reset meets a
# 429 and loses the run's sends.
DM_RESET_GRACE_SECONDS = 30
DM_RESET_MARGIN_SECONDS = 1  # X's reset is given in whole epoch seconds


class Welcomer:
    """One run's welcomes (make one per run)."""

    def __init__(
        self,
        sender: Sender,
        *,
        settings: Settings,
        policy: ModePolicy,
        present: Mapping[str, Follower],
        out_of_time: Callable[[], bool],
        started: str,
    ):
        self.sender = sender
        self.settings = settings
        self.policy = policy
        self.present = present  # followers seen in this run's pages, in list order
        self.current: dict[str, Follower] = {}  # queued followers as this run's lookup showed them
        self.out_of_time = out_of_time
        self.refusals = RefusalStreak(sender, requeue_to=policy.welcomes_from, started=started)

    @property
    def report(self) -> SendReport:
        return self.sender.report

    def run(self) -> SendReport:
        self._welcome_backlog()
        if self.settings.dry_run:
            return self.report
        meta = self.sender.meta
        if (spent := self.sender.rate_limit_spent()) and spent.reset_at:
            # The window these sends spent, for the next run or event batch (a new X client knows
            # nothing of it): it waits for the reset instead of meeting a 429.
            meta.dm_blocked_until = max(meta.dm_blocked_until, spent.reset_at)
        self._ask_for_wake_up(meta)
        return self.report

    def _ask_for_wake_up(self, meta: Meta) -> None:
        """With webhook delivery nothing may invoke the function for an hour (the safety net): if
        followers wait for X's DM window, ask to be woken at its reset, once per window."""
        wake_up, reset_at = self.sender.wake_up, meta.dm_blocked_until
        if wake_up is None or reset_at <= self.sender.now().timestamp() or meta.wake_up_at >= reset_at:
            return
        if not self.sender.ledger.queued(self.policy.welcomes_from, limit=1):
            return
        try:
            wake_up(meta.account_id, reset_at)
        except Exception as exc:  # noqa: BLE001 - only an earlier welcome is lost: the safety net still runs
            logger.warning("Could not ask to be woken at X's DM window reset", extra={"reason": type(exc).__name__})
            return
        meta.wake_up_at = reset_at

    def _welcome_backlog(self) -> None:
        meta, settings, report = self.sender.meta, self.settings, self.report
        now = self.sender.now()
        today = now.date().isoformat()
        if meta.daily_day != today:
            meta.daily_day, meta.daily_count = today, 0
        room = min(settings.max_welcomes_per_run, settings.daily_welcome_limit - meta.daily_count)
        if room <= 0:
            report.notes.append("daily welcome limit reached")
            return
        blocked_for = meta.dm_blocked_until - now.timestamp()
        if not settings.dry_run and blocked_for > 0:
            if blocked_for > DM_RESET_GRACE_SECONDS:
                report.rate_limited = True
                report.notes.append("X's DM rate limit is still spent; waiting for its reset")
                return
            self.sender.sleep(blocked_for + DM_RESET_MARGIN_SECONDS)
        used, go_on = confirm_opt_outs(
            self.sender,
            reply=settings.opt_out_reply,
            present=self.present,
            out_of_time=self.out_of_time,
            dry_run=settings.dry_run,
            room=room,
        )
        room -= used
        if room <= 0 or not go_on:
            return
        handled: set[str] = set()
        for _ in range(PRESENCE_ROUNDS_PER_RUN):
            asked_for = room + len(handled)
            queued = self.sender.ledger.queued(self.policy.welcomes_from, limit=asked_for)
            fresh = [e for e in queued if e.follower_id not in handled]
            handled.update(e.follower_id for e in fresh)
            presence = confirm_following(fresh, present=self.present, x=self.sender.x, ledger=self.sender.ledger, now=self.sender.now)
            self.current.update(presence.current)
            report.departed += presence.departed
            report.presence_lookups += presence.looked_up
            report.notes += presence.notes
            for entry in presence.confirmed:
                if self.out_of_time():
                    report.notes.append("stopped sending: Lambda time nearly spent")
                    return
                if meta.daily_count >= settings.daily_welcome_limit:  # other senders' sends count too
                    report.notes.append("daily welcome limit reached")
                    return
                if not self._welcome_entry(entry):
                    return
                room -= 1
            # Another round only when departures left room unused and more may be queued.
            if room <= 0 or not presence.departed or len(queued) < asked_for:
                return

    def _welcome_entry(self, entry: Entry) -> bool:
        """Welcome one queued follower who is confirmed to follow (or preview it in a dry run).
        Returns False when sending must stop for this run."""
        # Names change: greet people by the name X gave this run.
        current = self.present.get(entry.follower_id) or self.current.get(entry.follower_id)
        name, username = (current.name, current.username) if current else (entry.name, entry.username)
        filters = self.settings.filters
        reason = BLOCKLISTED if filters.is_blocked(entry.follower_id, username) else None
        if current and current.profile.get("receives_your_dm") is False:
            reason = reason or DMS_CLOSED  # closed since they were queued: X would refuse
        if current and filters.skip_protected and current.profile.get("protected") is True:
            reason = reason or PROTECTED
        if reason:
            fields = {"reason": reason, "skipped_at": iso(self.sender.now())}
            if self.sender.ledger.move("skip_pending", entry.follower_id, fields=fields):
                self.report.count_skip(reason)
            return True
        welcome = self._templates_for(entry).for_follower(entry.follower_id, name=name, username=username)
        if self.settings.dry_run:
            preview = {
                "follower_id": entry.follower_id,
                "username": username,
                "template_id": welcome.template_id,
                "notable": entry.notable,
                "text": welcome.text,
            }
            self.report.would_welcome.append(preview)
            logger.info("Dry run: would welcome", extra=preview)
            return True
        return self._welcome_one(entry.follower_id, welcome.template_id, welcome.text)

    def _templates_for(self, entry: Entry) -> MessageTemplates:
        if is_message_sender(entry.via):
            return self.settings.non_follower_templates
        return self.settings.notable_templates if entry.notable else self.settings.templates

    def _welcome_one(self, follower_id: str, template_id: str, text: str) -> bool:
        """Claim, send, record. Returns False when sending must stop for this run."""
        sender, ledger, report = self.sender, self.sender.ledger, self.report
        spent = sender.rate_limit_spent()
        if spent is not None:
            return sender.stop_for_rate_limit(spent)
        run_id = sender.run_id
        if not ledger.move("claim", follower_id, fields={"run_id": run_id, "template_id": template_id, "claimed_at": iso(sender.now())}):
            logger.info("Follower already claimed elsewhere", extra={"follower_id": follower_id})
            return True
        result = sender.send(follower_id, text)
        exc = result.error
        if result.outcome is Outcome.NOT_SENT:
            ledger.move("release", follower_id, run_id=run_id, fields={"detail": detail(str(exc))})
            if limited := result.rate_limited:
                return sender.stop_for_rate_limit(limited)
            report.failed += 1
            report.notes.append(f"stopped sending: {exc}")
            logger.warning("X unavailable; follower stays queued", extra={"follower_id": follower_id, "reason": str(exc)})
            return False
        if result.outcome in (Outcome.RECIPIENT_REFUSED, Outcome.MESSAGE_REFUSED):
            return self.refusals.refused(follower_id, result)
        if result.outcome is Outcome.UNKNOWN:
            fields = {"detail": detail(str(exc)), "uncertain_since": iso(sender.now())}
            ledger.move("mark_uncertain", follower_id, run_id=run_id, fields=fields)
            report.failed += 1
            report.notes.append(f"stopped sending: {exc}")
            logger.warning("DM outcome unknown; not resending", extra={"follower_id": follower_id, "reason": str(exc)})
            return False
        if result.outcome is Outcome.PERSON_NEEDED:
            # Provably not sent: put the follower back, then fail the run for a person to fix.
            ledger.move("release", follower_id, run_id=run_id, fields={"detail": detail("credentials or app permission problem")})
            result.reraise()
        dm_event_id = result.dm_event_id
        ledger.move(
            "mark_welcomed", follower_id, run_id=run_id, fields={"welcomed_at": iso(sender.now()), "dm_event_id": dm_event_id or "unknown"}
        )
        self.refusals.sent()
        sender.count_sent()
        report.welcomed += 1
        logger.info("Welcomed", extra={"follower_id": follower_id, "template_id": template_id, "dm_event_id": dm_event_id})
        return True
