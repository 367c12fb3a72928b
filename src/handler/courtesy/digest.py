"""The daily digest (digest mode): new followers, for a person to welcome by hand.

Nothing here talks to X. It lists the followers the welcome cycle queued for the
digest, notable ones first, each with a link to their profile and a suggested note
rendered from the templates, and publishes the list through ``publish`` (an SNS
topic). Each follower is listed in one digest: claimed ("listing") before the
publish, "listed" after it. Followers left "listing" by a digest that died between
the two are listed again in the next one, marked as possibly listed already: a
repeated line to the operator is better than a follower never mentioned.

Each part is published once, never retried: ``publish`` raises DigestNotPublished when
SNS provably did not take it (its followers go back to wait for the next digest) and
DigestMaybePublished when it may have (a timeout, a 5xx): those followers stay claimed,
so the next digest lists them again, marked, like after a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from courtesy.domain import iso
from courtesy.errors import CourtesyError, DigestNotPublished
from courtesy.ledger import Entry, Ledger
from courtesy.lifecycle import Queue
from courtesy.observability import logger
from courtesy.policy import is_message_sender
from courtesy.settings import Settings

# Followers per published message (SNS takes 256 KB; an e-mail stays readable), and
# messages per digest. More than that wait for the next day's digest.
ENTRIES_PER_MESSAGE = 100
MESSAGES_PER_DIGEST = 5
PROFILE_URL = "https://x.com/{username}"
SNS_SUBJECT_MAX = 100


class DigestMaybePublished(CourtesyError):
    """The publish request left and SNS did not say it took it (a timeout, a 5xx): it may be out."""


@dataclass
class DigestSummary:
    digest_id: str
    listed: int = 0
    notable: int = 0
    listed_again: int = 0
    messages: int = 0
    waiting: int = 0  # still queued for the next digest
    not_published: bool = False
    # A part may or may not have been published: its followers stay "listing" for the next digest.
    outcome_unknown: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Line:
    entry: Entry
    note: str
    again: bool


class Digest:
    def __init__(
        self,
        *,
        ledger: Ledger,
        settings: Settings,
        publish: Callable[[str, str], None],
        now: Callable[[], datetime],
        digest_id: str,
    ):
        self.ledger = ledger
        self.settings = settings
        self.publish = publish
        self.now = now
        self.summary = DigestSummary(digest_id=digest_id)

    def run(self) -> DigestSummary:
        digest_id, now = self.summary.digest_id, iso(self.now())
        capacity = ENTRIES_PER_MESSAGE * MESSAGES_PER_DIGEST
        lines: list[Line] = []
        for entry in self.ledger.queued(Queue.DIGEST_LISTING, limit=capacity):
            # A digest that stopped between claiming and recording: maybe published, maybe not.
            fields = {"run_id": digest_id, "listing_at": now, "maybe_listed_before": "true"}
            if self.ledger.move("relist", entry.follower_id, fields=fields):
                lines.append(Line(entry, self._note(entry), again=True))
        for entry in self.ledger.queued(Queue.DIGEST, limit=capacity - len(lines)):
            if is_message_sender(entry.via):
                continue  # not a follower (reply mode's); never in a digest
            if self.ledger.move("start_listing", entry.follower_id, fields={"run_id": digest_id, "listing_at": now}):
                lines.append(Line(entry, self._note(entry), again=False))
        # Notable followers first; otherwise in the order they followed.
        lines.sort(key=lambda line: (not line.entry.notable, line.entry.queued_at))
        chunks = [lines[i : i + ENTRIES_PER_MESSAGE] for i in range(0, len(lines), ENTRIES_PER_MESSAGE)]
        for number, chunk in enumerate(chunks, 1):
            subject, body = self.compose(chunk, total=len(lines), part=(number, len(chunks)))
            try:
                self.publish(subject, body)
            except DigestNotPublished as exc:
                # Provably not published: this part and the rest go back to wait for the next digest.
                for line in (line for rest in chunks[number - 1 :] for line in rest):
                    self.ledger.move("release_listing", line.entry.follower_id, run_id=digest_id)
                self.summary.not_published = True
                self.summary.notes.append(f"digest not published: {exc}")
                logger.error("Digest not published; its followers wait for the next one", extra={"reason": str(exc)})
                break
            except DigestMaybePublished as exc:
                # Maybe out: this part's followers stay claimed, and the next digest lists them again,
                # marked. Never resent now (at most once). The parts after it were not sent: released.
                for line in (line for rest in chunks[number:] for line in rest):
                    self.ledger.move("release_listing", line.entry.follower_id, run_id=digest_id)
                self.summary.outcome_unknown = True
                self.summary.notes.append(
                    f"digest may or may not be published ({exc}): its {len(chunk)} followers are listed again in the next digest"
                )
                logger.warning("Digest may not be published; its followers are listed again next time", extra={"reason": str(exc)})
                break
            self.summary.messages += 1
            for line in chunk:
                self.ledger.move(
                    "mark_listed", line.entry.follower_id, run_id=digest_id, fields={"digest_id": digest_id, "listed_at": iso(self.now())}
                )
                self.summary.listed += 1
                self.summary.notable += int(line.entry.notable)
                self.summary.listed_again += int(line.again)
        if not lines:
            self.summary.notes.append("no new followers since the last digest; nothing published")
        self.summary.waiting = self.ledger.count_queued(Queue.DIGEST)
        return self.summary

    def _note(self, entry: Entry) -> str:
        templates = self.settings.notable_templates if entry.notable else self.settings.templates
        return templates.for_follower(entry.follower_id, name=entry.name, username=entry.username).text

    def compose(self, lines: list[Line], *, total: int, part: tuple[int, int]) -> tuple[str, str]:
        """The subject and plain-text body of one published message."""
        day = self.now().astimezone(UTC).date().isoformat()
        people = "follower" if total == 1 else "followers"
        part_text = f" (part {part[0]} of {part[1]})" if part[1] > 1 else ""
        subject = f"Courtesy digest {day}: {total} new {people} to welcome{part_text}"[:SNS_SUBJECT_MAX]
        out = [
            f"{total} new {people} to welcome by hand{part_text}. Courtesy sent them nothing:",
            "open a profile, press Message, and send the suggested note or your own words.",
        ]
        section = None
        for number, line in enumerate(lines, 1):
            heading = "Notable followers" if line.entry.notable else "New followers"
            if heading != section:
                out += ["", heading, "-" * len(heading)]
                section = heading
            entry = line.entry
            who = f"{entry.name} (@{entry.username})" if entry.name else f"@{entry.username}"
            out.append(f"{number}. {who}  {PROFILE_URL.format(username=entry.username)}")
            followed = entry.queued_at.split("#")[0][:16].replace("T", " ")
            if followed:
                out.append(f"   first seen {followed} UTC")
            if line.again:
                out.append("   (may be in an earlier digest that was interrupted)")
            out.append(f"   Suggested note: {line.note}")
        out += ["", f"Sent by Courtesy ({self.summary.digest_id}). People who opted out are never listed."]
        return subject, "\n".join(out)
