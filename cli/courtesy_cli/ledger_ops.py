"""What the operator commands read from and write to the ledger and the idempotency table.

Reads are scans of the tables. Every write is one of the ledger's own lifecycle transitions
(courtesy.lifecycle: block, unblock_pending, unblock_departed, forget_blocked, mark_thanked,
reopen_refused), conditional on the state it expects, like the function's own: a follower a
run is welcoming right now is never touched.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from courtesy.domain import iso, queue_key
from courtesy.ledger import META_KEY, Ledger, plain
from courtesy.ledger_store import from_dynamodb, to_dynamodb
from courtesy.lifecycle import NEW, Queue, State
from courtesy.policy import policy_for
from courtesy_cli import ui
from courtesy_cli.resources import CliError

SKIPPED = State.SKIPPED
OPTED_OUT = State.OPTED_OUT
LISTED = State.LISTED
LISTING = State.LISTING
BLOCKLISTED = "blocklisted"
UNKNOWN = "unknown"  # blocked_from for a follower the ledger did not know
EXPORTED_STATES = (
    State.WELCOMED,
    SKIPPED,
    State.UNDELIVERABLE,
    State.FAILED,
    State.UNCERTAIN,
    State.DEPARTED,
    OPTED_OUT,
    LISTED,
    LISTING,
)
# Export columns taken from the item as they are; "state" and "time" are added.
EXPORT_ATTRIBUTES = (
    "follower_id",
    "username",
    "name",
    "first_seen_at",
    "welcomed_at",
    "template_id",
    "reason",
    "detail",
    "dm_event_id",
    "notable",
    "thanked_at",
    "asked_at",
    "via",
    "digest_id",
    "listed_at",
    "opted_out_at",
    "opt_out_word",
    "state_before_opt_out",
    "confirmation",
)
EXPORT_COLUMNS = ("follower_id", "username", "name", "state", "time", *EXPORT_ATTRIBUTES[3:])
# The export's "time": when the follower reached their state, where the ledger records it.
STATE_TIME = {State.WELCOMED: "welcomed_at", OPTED_OUT: "opted_out_at", LISTED: "listed_at", LISTING: "listing_at"}
# States block may change, and what it says about the others.
BLOCKABLE = (State.PENDING, State.DEPARTED)
REFUSALS = {
    State.WELCOMED: "was already welcomed; a block cannot take a message back",
    State.SENDING: "is being welcomed by a run right now; try again in a few minutes",
    State.UNCERTAIN: "may already have a welcome (the send's outcome is uncertain); it is never resent anyway",
    State.UNDELIVERABLE: "cannot be messaged (X refused the recipient); it is never retried",
    State.FAILED: "had its welcome refused by X; it is never retried",
    State.BASELINE: "followed before Courtesy started and is never welcomed; no block needed",
    OPTED_OUT: "opted out and is never messaged again; no block needed",
    LISTED: "was listed in a digest for a person to welcome by hand; Courtesy never messages them",
    LISTING: "is in a digest being published; Courtesy never messages them",
}
# States requeue puts back in the queue once a person has fixed the cause (X refused the
# recipient, or the message): the function never retries them on its own.
REQUEUEABLE = (State.UNDELIVERABLE, State.FAILED)
PROFILE = "https://x.com/{}"


def now_iso() -> str:
    return iso(datetime.now(UTC))


def _states(states: tuple[str, ...]) -> dict[str, Any]:
    """A scan's filter on the state: one of ``states``."""
    values = to_dynamodb({f":s{i}": str(s) for i, s in enumerate(states)})
    return {
        "FilterExpression": f"#state IN ({', '.join(values)})",
        "ExpressionAttributeNames": {"#state": "state"},
        "ExpressionAttributeValues": values,
    }


@dataclass
class LedgerTable:
    client: Any
    name: str
    ledger: Ledger = field(init=False, repr=False)  # every write goes through its transitions

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.client, self.name)

    # --- reading ---------------------------------------------------------------------

    def _approximate_count(self, table: str) -> int | None:
        try:
            return int(self.client.describe_table(TableName=table)["Table"].get("ItemCount", 0)) or None
        except ClientError:
            return None  # a progress bar without a total is fine

    def scan(self, description: str, *, table: str | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a table (plain values), page by page, with a progress bar."""
        table = table or self.name
        pages = self.client.get_paginator("scan").paginate(TableName=table, **kwargs)  # follows LastEvaluatedKey
        for item in ui.paged(description, iter(pages), self._approximate_count(table)):
            yield plain(from_dynamodb(item))

    def get(self, follower_id: str) -> dict[str, Any] | None:
        item = self.ledger.get(follower_id)
        return plain(item) if item is not None else None

    def find_username(self, username: str) -> list[dict[str, Any]]:
        """Followers the ledger knows by this username (X usernames are case-insensitive)."""
        wanted = username.lstrip("@").lower()
        return [
            item
            for item in self.scan(f"Looking for @{wanted}", ProjectionExpression="follower_id, username")
            if str(item.get("username", "")).lower() == wanted and item["follower_id"] != META_KEY
        ]

    def resolve(self, target: str) -> tuple[str, dict[str, Any] | None]:
        """A numeric id or @username as (follower id, its ledger item or None)."""
        target = target.strip()
        if target.isdigit():
            return target, self.get(target)
        if not target.lstrip("@") or not target.lstrip("@").replace("_", "").isalnum():
            raise CliError(f"{target!r} is neither a numeric X user id nor an @username")
        matches = self.find_username(target)
        if not matches:
            raise CliError(
                f"@{target.lstrip('@')} is not known to the ledger yet (only followers Courtesy has seen are). "
                "Block them by their numeric X user id instead: the ledger then skips them when they follow.",
                code=1,
            )
        if len(matches) > 1:
            ids = ", ".join(m["follower_id"] for m in matches)
            raise CliError(f"@{target.lstrip('@')} matches several followers ({ids}; usernames get reused): give the numeric id", code=1)
        follower_id = matches[0]["follower_id"]
        return follower_id, self.get(follower_id)

    def status(self) -> dict[str, Any]:
        states: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        queues: Counter[str] = Counter()
        expired = 0
        notable: list[dict[str, Any]] = []
        opted_out: list[dict[str, Any]] = []
        meta: dict[str, Any] = {}
        for item in self.scan("Reading the ledger"):
            if item["follower_id"] == META_KEY:
                meta = item
                continue
            if item["follower_id"].startswith("#"):
                continue  # the ledger's own bookkeeping (e.g. the OAuth refresh lease), not a follower
            state = item.get("state", "?")
            states[state] += 1
            if state == SKIPPED:
                reasons[item.get("reason", "?")] += 1
            if item.get("queue"):
                queues[item["queue"]] += 1
            if item.get("queue") == Queue.UNCERTAIN_EXPIRED:
                expired += 1
            if state == OPTED_OUT:
                opted_out.append(
                    {
                        "follower_id": item["follower_id"],
                        "username": item.get("username", ""),  # "" for someone who wrote without following
                        "opted_out_at": item.get("opted_out_at", ""),
                        "opt_out_word": item.get("opt_out_word", ""),
                        "confirmation": item.get("confirmation", ""),
                    }
                )
            if item.get("notable") == "true" and not item.get("thanked_at"):
                notable.append(
                    {
                        "follower_id": item["follower_id"],
                        "username": item.get("username", ""),
                        "name": item.get("name", ""),
                        "state": state,
                        "first_seen_at": item.get("first_seen_at", ""),
                        "profile": PROFILE.format(item.get("username", "")) if item.get("username") else "",
                    }
                )
        notable.sort(key=lambda n: n["first_seen_at"], reverse=True)
        opted_out.sort(key=lambda o: (o["opted_out_at"], o["follower_id"]), reverse=True)
        today = datetime.now(UTC).date().isoformat()
        blocked_until = float(meta.get("dm_blocked_until", 0) or 0)
        return {
            "states": dict(sorted(states.items())),
            "skipped_by_reason": dict(reasons.most_common()),
            "followers": sum(states.values()),
            "backlog": states.get(State.PENDING, 0),
            "uncertain": states.get(State.UNCERTAIN, 0),
            "uncertain_expired": expired,
            "welcomes_today": int(meta.get("daily_count", 0) or 0) if meta.get("daily_day") == today else 0,
            "day": today,
            "baseline_at": meta.get("baseline_at", ""),
            "baseline_done": meta.get("baseline_done") == "true",
            "dm_blocked_until": datetime.fromtimestamp(blocked_until, UTC).isoformat()
            if blocked_until > datetime.now(UTC).timestamp()
            else "",
            "notable_unthanked": notable,
            "queues": dict(sorted(queues.items())),
            "opted_out": opted_out,
        }

    def last_runs(self, idempotency_table: str, limit: int) -> list[dict[str, Any]]:
        """Summaries of completed runs, newest slot first, from Powertools' idempotency records."""
        runs = []
        for record in self.scan(
            "Reading run records",
            table=idempotency_table,
            FilterExpression="#s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=to_dynamodb({":done": "COMPLETED"}),
        ):
            try:
                summary = json.loads(record.get("data", ""))
            except ValueError:
                continue
            if isinstance(summary, dict) and summary.get("slot"):
                runs.append(summary)
        runs.sort(key=lambda r: str(r.get("slot")), reverse=True)
        return runs[:limit]

    def export_rows(self, states: tuple[str, ...]) -> list[dict[str, str]]:
        rows = []
        for item in self.scan("Exporting", **_states(states)):
            state = item.get("state", "")
            time = (
                item.get(STATE_TIME.get(state, ""))
                or item.get("departed_at")
                or item.get("closed_at")
                or item.get("uncertain_since")
                or item.get("skipped_at")
                or item.get("first_seen_at", "")
            )
            rows.append({**{key: item.get(key, "") for key in EXPORT_ATTRIBUTES}, "state": state, "time": time})
        rows.sort(key=lambda r: (r["time"], r["follower_id"]))
        return rows

    # --- writing: the ledger's operator transitions (each one conditional) -------------

    def block(self, follower_id: str, item: dict[str, Any] | None) -> tuple[bool, str]:
        """(changed, what happened). A pending, departed or unknown follower becomes skipped/blocklisted."""
        for _ in range(3):
            now = now_iso()
            fields = {"reason": BLOCKLISTED, "blocked_at": now, "skipped_at": now}
            if item is None:
                if self.ledger.move("block", follower_id, expected=NEW, given=None, fields={**fields, "blocked_from": UNKNOWN}):
                    return True, f"{follower_id} was not in the ledger; recorded as skipped (blocklisted): never welcomed"
                item = self.get(follower_id)  # a run recorded them meanwhile: look again
                continue
            state = item.get("state", "")
            if state == SKIPPED:
                if item.get("reason") == BLOCKLISTED:
                    return False, f"{_who(item)} is already blocked"
                return False, f"{_who(item)} is already skipped ({item.get('reason', '?')}) and will never be welcomed"
            if state not in BLOCKABLE:
                raise CliError(f"Not blocked: {_who(item)} {REFUSALS.get(state, f'is {state}')}.", code=1)
            # The queue is kept (blocked_queue, "" for none) so unblock puts the follower back exactly:
            # a pending follower's queue depends on the welcome mode (e.g. none in reply mode until they write).
            queue = item.get("queue", "")
            if self.ledger.move(
                "block", follower_id, expected=state, given=queue or None, fields={**fields, "blocked_from": state, "blocked_queue": queue}
            ):
                return True, f"{_who(item)} was {state}; now skipped (blocklisted): never welcomed"
            item = self.get(follower_id)  # its state changed under us: decide again
        raise CliError(f"{follower_id} keeps changing state; try again in a minute", code=1)

    def unblock(self, follower_id: str, item: dict[str, Any] | None) -> str:
        if item is None:
            raise CliError(f"{follower_id} is not in the ledger, so not blocked", code=1)
        if item.get("state") != SKIPPED or item.get("reason") != BLOCKLISTED:
            raise CliError(
                f"{_who(item)} is not blocked (state {item.get('state')}, reason {item.get('reason', '-')}); nothing changed", code=1
            )
        previous = item.get("blocked_from")
        if previous is None:
            raise CliError(
                f"{_who(item)} was skipped by the function's own blocklist (the template parameter), not by `courtesy block`; "
                "a skip the function recorded is never undone, so nothing changed",
                code=1,
            )
        if previous == UNKNOWN:
            if not self.ledger.move("forget_blocked", follower_id):
                raise _changed_while_unblocking(follower_id)
            return f"{_who(item)} unblocked: not in the ledger again, as before the block"
        if previous not in BLOCKABLE:
            raise CliError(f"{_who(item)} was blocked from an unexpected state {previous!r}; not changed", code=1)
        if previous == State.PENDING:
            # Blocks recorded before blocked_queue existed took a pending follower out of the pending queue.
            queue = item.get("blocked_queue", Queue.PENDING)
            if queue and not item.get("queued_at"):
                raise CliError(f"{_who(item)} has no queued_at to go back into the queue with; not changed", code=1)
            moved = self.ledger.move("unblock_pending", follower_id, queue=queue or None)
        else:
            moved = self.ledger.move("unblock_departed", follower_id)
        if not moved:
            raise _changed_while_unblocking(follower_id)
        return f"{_who(item)} unblocked: {previous} again"

    def thanked(self, follower_id: str, item: dict[str, Any] | None) -> tuple[bool, str]:
        if item is None:
            raise CliError(f"{follower_id} is not in the ledger", code=1)
        if item.get("notable") != "true":
            raise CliError(f"{_who(item)} is not a notable follower; nothing changed", code=1)
        if item.get("thanked_at"):
            return False, f"{_who(item)} was already marked thanked at {item['thanked_at']}"
        at = now_iso()
        if not self.ledger.move("mark_thanked", follower_id, fields={"thanked_at": at}):
            return False, f"{_who(item)} was marked thanked meanwhile"
        return True, f"{_who(item)} marked as thanked personally at {at}"


def _changed_while_unblocking(follower_id: str) -> CliError:
    return CliError(f"{follower_id} changed while unblocking; nothing changed, try again", code=1)


def requeue_queue(mode: str, item: dict[str, Any]) -> str | None:
    """The queue a requeued follower waits in under this welcome mode (None: in no queue), as the
    function itself places followers (courtesy.policy)."""
    return policy_for(mode).requeue_to(item.get("via"), item.get("asked_at"))


@dataclass
class Requeued:
    follower_id: str
    done: bool
    message: str


def requeue_candidates(ledger: LedgerTable, states: tuple[str, ...], targets: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(followers to requeue, why some named ones are not): every follower in ``states``, or only
    the ``targets`` (ids or @usernames) among them; oldest closed first."""
    skipped: list[str] = []
    if targets:
        found: dict[str, dict[str, Any]] = {}
        for target in targets:
            follower_id, item = ledger.resolve(target)
            if item is None:
                skipped.append(f"{follower_id} is not in the ledger")
            elif item.get("state") not in states:
                skipped.append(f"{_who(item)} is {item.get('state', '?')}, not {' or '.join(states)}")
            else:
                found[follower_id] = item
        items = list(found.values())
    else:
        scanned = ledger.scan("Looking for followers to requeue", **_states(states))
        items = [item for item in scanned if not str(item["follower_id"]).startswith("#")]
    items.sort(key=lambda i: (str(i.get("closed_at", "")), i["follower_id"]))
    return items, skipped


def requeue(ledger: LedgerTable, item: dict[str, Any], queue: str | None) -> Requeued:
    """undeliverable/failed -> pending, in ``queue``, through the ledger's own transition: conditional
    on the state shown to the operator, so a follower that changed meanwhile is reported and left."""
    follower_id, state = item["follower_id"], item.get("state", "")
    now = now_iso()
    # Back at their old place in the queue (oldest first): they have waited longest.
    queued_at = str(item.get("queued_at") or queue_key(now, 0))
    fields = {"queued_at": queued_at, "reopened_at": now, "reopened_from": state}
    if not ledger.ledger.move("reopen_refused", follower_id, expected=state, queue=queue, fields=fields):
        current = ledger.get(follower_id)
        what = f"is {current.get('state', '?')} now" if current and current.get("state") != state else "changed meanwhile"
        return Requeued(follower_id, False, f"{_who(item)} {what}; left as it is")
    where = f"queue {queue}" if queue else "no queue: reply mode welcomes them when they write"
    return Requeued(follower_id, True, f"{_who(item)} was {state}; now pending ({where})")


def _who(item: dict[str, Any]) -> str:
    username = ui.clean(item.get("username", ""))
    return f"{item['follower_id']} (@{username})" if username else str(item["follower_id"])
