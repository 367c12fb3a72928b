"""Stand-ins for the two adapters without a network: a hand-written X, and the real ledger in memory."""

from __future__ import annotations

from courtesy.domain import Follower, FollowersPage
from courtesy.errors import CourtesyError, RateLimited, SendOutcomeUnknown
from courtesy.ledger import Ledger, Meta
from courtesy.ledger_store import Item, MemoryStore


class FakeX:
    """An account whose followers are a newest-first list; records every DM it accepts."""

    def __init__(self, followers: int = 0):
        self.followers: list[Follower] = []
        self.sent: list[tuple[str, str]] = []
        self.users_returned = 0
        self.page_sizes: list[int] = []
        self.send_errors: dict[str, CourtesyError] = {}  # follower id -> error raised on send
        self.page_error: CourtesyError | None = None
        self.spent: RateLimited | None = None
        self.lose_answer_to: set[str] = set()  # follower ids whose DM is stored but the answer lost
        self.lookups = 0
        self.users_looked_up: list[str] = []
        self.follow(followers)

    def follow(self, count: int) -> list[Follower]:
        start = len(self.followers) + len(self.sent) + 1000
        new = [Follower(str(start + i), f"fan{start + i}", f"Fan {start + i}") for i in range(count)]
        for follower in new:
            self.followers.insert(0, follower)
        return new

    def account_id(self) -> str:
        return "1"

    def followers_page(self, account_id: str, *, max_results: int, token: str | None = None) -> FollowersPage:
        if self.page_error:
            raise self.page_error
        self.page_sizes.append(max_results)
        start = int(token or 0)
        page = self.followers[start : start + max_results]
        self.users_returned += len(page)
        more = start + max_results < len(self.followers)
        return FollowersPage(page, str(start + max_results) if more else None)

    def followers_count(self) -> int:
        return len(self.followers)

    def users_lookup_spent(self) -> RateLimited | None:
        return None

    def lookup_users(self, ids) -> dict[str, Follower | None]:
        """Each id as X shows it now: following the account ("followed_by") or not."""
        ids = list(dict.fromkeys(ids))
        self.users_looked_up += ids
        following = {f.id: f for f in self.followers}
        out: dict[str, Follower | None] = {}
        for i in ids:
            f = following.get(i)
            out[i] = Follower(f.id, f.username, f.name, {**f.profile, "connection_status": ["followed_by"]}) if f else None
        return out

    def dm_sends_spent(self) -> RateLimited | None:
        return self.spent

    def send_dm(self, recipient_id: str, text: str) -> str:
        if recipient_id in self.send_errors:
            raise self.send_errors.pop(recipient_id)
        self.sent.append((recipient_id, text))
        if recipient_id in self.lose_answer_to:
            self.lose_answer_to.discard(recipient_id)
            raise SendOutcomeUnknown("stored, but the answer was lost")
        return f"dm-{len(self.sent)}"

    def find_sent_dm(self, account_id: str, participant_id: str, *, since) -> str | None:
        self.lookups += 1
        found = [i for i, (recipient, _) in enumerate(self.sent) if recipient == participant_id]
        return f"dm-{found[-1] + 1}" if found else None

    def dms_to(self, follower_id: str) -> list[str]:
        return [text for recipient, text in self.sent if recipient == follower_id]


class FakeLedger(Ledger):
    """The real ledger, its lifecycle table and conditions, over an in-memory store: the
    fake cannot drift from the rules because it has none of its own."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        super().__init__(store=self.memory)

    @property
    def items(self) -> dict[str, Item]:
        """Every follower's record (not the ledger's own "#" items)."""
        return {k: v for k, v in self.memory.items.items() if v is not None and not k.startswith("#")}

    @property
    def meta(self) -> Meta | None:
        return self.load_meta()

    def states(self) -> dict[str, str]:
        return {k: str(v["state"]) for k, v in self.items.items()}
