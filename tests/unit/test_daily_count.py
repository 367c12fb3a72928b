"""The daily count of sends is shared by the scheduled run and the event worker, which may both
send at once: every send adds one atomically, and saving the run's meta never writes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from courtesy.ledger import META_KEY, Ledger, Meta
from courtesy.ledger_store import DynamoStore, MemoryStore
from courtesy.sending import Sender, SendReport
from tests.unit.conftest import LEDGER_TABLE, moto_ledger_table

DAY = "2030-01-01"
NEXT_DAY = "2030-01-02"


@pytest.fixture(params=["dynamodb", "memory"])
def ledger(request):
    if request.param == "memory":
        yield Ledger(store=MemoryStore())
        return
    with moto_ledger_table() as client:
        yield Ledger(store=DynamoStore(client, LEDGER_TABLE))


def sender(ledger: Ledger, meta: Meta) -> Sender:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    return Sender(x=None, ledger=ledger, now=lambda: now, run_id="r", meta=meta, report=SendReport())  # type: ignore[arg-type]


def stored(ledger: Ledger) -> tuple[str, int]:
    item = ledger.get(META_KEY) or {}
    return item.get("daily_day", ""), int(item.get("daily_count", 0))


def test_two_senders_that_loaded_the_same_meta_both_count(ledger):
    ledger.save_meta(Meta(baseline_done=True))
    run, events = sender(ledger, Meta(daily_day=DAY)), sender(ledger, Meta(daily_day=DAY))
    run.count_sent()
    events.count_sent()  # it loaded the meta before the run's send
    run.count_sent()
    assert stored(ledger) == (DAY, 3)
    assert run.meta.daily_count == 3  # each sender learns the others' sends from the count


def test_saving_a_runs_meta_keeps_sends_counted_meanwhile(ledger):
    ledger.save_meta(Meta(baseline_done=True))
    run_meta = ledger.load_meta()
    sender(ledger, Meta(daily_day=DAY)).count_sent()  # the event worker sends during the run
    run_meta.head = ["42"]
    ledger.save_meta(run_meta)  # the run ends
    assert stored(ledger) == (DAY, 1)
    assert ledger.load_meta().head == ["42"]


def test_a_new_day_starts_the_count_again_and_an_older_day_never_resets_it(ledger):
    for _ in range(4):
        sender(ledger, Meta(daily_day=DAY)).count_sent()
    assert stored(ledger) == (DAY, 4)
    sender(ledger, Meta(daily_day=NEXT_DAY)).count_sent()
    assert stored(ledger) == (NEXT_DAY, 1)
    late = sender(ledger, Meta(daily_day=DAY))  # its clock has not passed midnight yet
    late.count_sent()
    assert stored(ledger) == (NEXT_DAY, 2)
    assert (late.meta.daily_day, late.meta.daily_count) == (NEXT_DAY, 2)


def test_the_first_send_ever_is_counted_without_a_meta_item(ledger):
    sender(ledger, Meta(daily_day=DAY)).count_sent()
    assert stored(ledger) == (DAY, 1)
