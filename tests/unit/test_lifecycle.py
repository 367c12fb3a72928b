"""The lifecycle table is the only statement of the ledger's rules: DynamoDB and the in-memory
store (the unit tests' ledger, the preview's overlay) apply every row the same way, the
README's diagram is the table's, and the ledger imports no X adapter."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from courtesy import lifecycle
from courtesy.ledger import Ledger, TransitionRefused
from courtesy.ledger_store import DynamoStore, MemoryStore
from courtesy.lifecycle import ANY, CHOSEN, GIVEN, KEEP, NEW, TRANSITIONS, Confirmation, Queue, State
from tests.unit.conftest import LEDGER_TABLE, moto_ledger_table

ROOT = Path(__file__).resolve().parents[2]
RUN = "run-1"


@pytest.fixture(scope="module")
def dynamodb():
    with moto_ledger_table() as client:
        yield client


def starting_items(state: str) -> list[dict[str, str] | None]:
    """Records in ``state`` that do and do not meet each kind of condition in the table."""
    if state == NEW:
        return [None]
    base = {"state": state, "username": "fan", "name": "Fan", "queued_at": "2026-11-26T02:00:00.000000Z#999999"}
    return [
        {**base, "queue": Queue.PENDING, "run_id": RUN, "confirmation": Confirmation.DUE, "asked_at": "2026-11-26T01:00:00.000000Z"},
        {**base, "queue": Queue.DIGEST, "run_id": "another-run", "confirmation": Confirmation.SENDING, "notable": "true"},
        {**base, "queue": Queue.REPLY_DUE, "run_id": RUN, "confirmation": Confirmation.SENDING, "reason": "blocklisted"},
        {**base, "reason": "blocklisted", "blocked_from": State.PENDING, "blocked_queue": Queue.PENDING, "notable": "true"},
        {**base, "reason": "blocklisted", "blocked_from": State.DEPARTED, "thanked_at": "2026-11-26T03:00:00.000000Z"},
        {**base, "reason": "blocklisted", "blocked_from": "unknown", "asked_at": "2026-11-27T00:00:00.000000Z"},
    ]


def arguments(t: lifecycle.Transition, source: str) -> dict:
    kwargs: dict = {"fields": {"asked_at": "2026-11-26T12:00:00.000000Z", "claimed_at": "2026-11-26T12:00:00.000000Z"}}
    if len(t.sources) > 1:
        kwargs["expected"] = source
    if t.by_run:
        kwargs["run_id"] = RUN
    if t.queue == CHOSEN:
        kwargs["queue"] = Queue.REPLY_DUE
    if any(value == GIVEN for _, _, value in t.when):
        kwargs["given"] = Queue.PENDING
    return kwargs


CASES = [
    (t, source, n)
    for t in TRANSITIONS
    for source in ([*State] if ANY in t.sources else [*t.sources, *(s for s in State if s not in t.sources)][:4])
    for n in range(len(starting_items(source)))
]


@pytest.mark.parametrize("t, source, n", CASES, ids=[f"{t.name}-{s}-{n}" for t, s, n in CASES])
def test_dynamodb_and_memory_apply_every_transition_alike(dynamodb, t, source, n):
    key = f"{t.name}-{source}-{n}"
    start = starting_items(source)[n]
    results = []
    for store in (DynamoStore(dynamodb, LEDGER_TABLE), MemoryStore()):
        if start is not None:
            store.put({"follower_id": key, **start})
        ledger = Ledger(store=store)
        if source not in t.sources and ANY not in t.sources and len(t.sources) > 1:
            with pytest.raises(TransitionRefused):
                ledger.move(t.name, key, **arguments(t, source))
            results.append(("refused", store.get(key)))
        else:
            moved = ledger.move(t.name, key, **arguments(t, t.sources[0] if len(t.sources) == 1 else source))
            results.append((moved, store.get(key)))
        if start is not None or results[-1][1] is not None:
            store.delete(key)
    (dynamo_moved, dynamo_item), (memory_moved, memory_item) = results
    assert dynamo_moved == memory_moved
    assert dynamo_item == memory_item
    if dynamo_moved is True and t.to not in (KEEP, lifecycle.GONE):
        assert dynamo_item["state"] == t.to  # a move that happened ends where the table says


def test_a_move_the_table_does_not_have_is_refused_before_any_write():
    store = MemoryStore()
    ledger = Ledger(store=store)
    with pytest.raises(TransitionRefused):
        ledger.move("reopen_refused", "1", expected=State.WELCOMED, queue=Queue.PENDING)
    with pytest.raises(TransitionRefused):
        ledger.move("mark_welcomed", "1")  # needs the claiming run
    with pytest.raises(TransitionRefused):
        ledger.move("record_new", "1")  # the welcome mode decides the queue
    with pytest.raises(TransitionRefused):
        ledger.put_record("1", {"state": State.WELCOMED}, when=())  # followers change only by transitions
    assert store.writes == 0


def test_every_state_and_queue_is_reachable_and_every_queue_is_left():
    reached = {to for _, to, _ in lifecycle.edges()}
    assert set(State) <= reached
    entered = {t.queue for t in TRANSITIONS if isinstance(t.queue, Queue)} | {Queue.PENDING, Queue.DIGEST, Queue.OPT_OUT_CONFIRM}
    assert entered == set(Queue)


def test_the_readme_diagram_is_the_lifecycle_table():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```mermaid\n(stateDiagram-v2\n.*?)\n```", readme, re.S)
    assert blocks == [lifecycle.diagram()], "regenerate it with: python -m courtesy.lifecycle (from src/handler)"


def test_importing_the_ledger_loads_no_x_adapter():
    code = "import sys, courtesy.ledger, courtesy.lifecycle, courtesy.domain; print(sorted({'tweepy', 'requests'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "src" / "handler", capture_output=True, text=True, check=True)  # noqa: S603 - our own interpreter and code
    assert out.stdout.strip() == "[]"


def test_the_function_has_no_import_cycle():
    package = ROOT / "src" / "handler" / "courtesy"
    imports = {path.stem: set(re.findall(r"^\s*from courtesy(?:\.(\w+))? import", path.read_text(), re.M)) for path in package.glob("*.py")}
    imports = {module: {m for m in found if m and m != module} for module, found in imports.items()}

    def cycle_from(module: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in imports.get(module, ()):
            if nxt in path:
                return (*path, nxt)
            if found := cycle_from(nxt, (*path, nxt)):
                return found
        return None

    cycles = [c for m in imports if (c := cycle_from(m, (m,)))]
    assert cycles == []
    assert list(itertools.chain.from_iterable(imports.values()))  # the check looked at real imports
