"""Every write to the ledger is a lifecycle transition: only courtesy.ledger_store talks to
DynamoDB's write API, so neither the function nor the operator CLI can write a follower's
record in a way the lifecycle table (courtesy.lifecycle) does not allow."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("cli", "src/handler/courtesy")
# DynamoDB's write calls and the expressions only writes take (KeyConditionExpression, a
# query's, is a read: the word boundary leaves it out).
WRITES = re.compile(r"\b(put_item|update_item|delete_item|batch_write_item|transact_write_items|UpdateExpression|ConditionExpression)\b")
# Files under SCANNED allowed to write, and why. Not scanned at all: tools/ (creates the local
# tables and seeds them), sandbox/ and bench/ (stand-ins for X and AWS), tests/ (seed the
# ledger as a run would have left it).
ALLOWED = {
    "src/handler/courtesy/ledger_store.py": "the one adapter to DynamoDB: turns the lifecycle's conditions into requests",
}


def scanned_files() -> list[Path]:
    files = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def writes_in(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for number, line in enumerate(lines, 1) if WRITES.search(line)]


def test_only_the_ledger_store_writes_to_dynamodb():
    files = scanned_files()
    for expected in ("cli/courtesy_cli/ledger_ops.py", "cli/courtesy_cli/preview.py", "src/handler/courtesy/ledger.py"):
        assert ROOT / expected in files, f"{expected} was not scanned"
    found = [hit for path in files if str(path.relative_to(ROOT)) not in ALLOWED for hit in writes_in(path)]
    assert found == [], "DynamoDB writes outside courtesy.ledger_store (use a lifecycle transition):\n" + "\n".join(found)


def test_the_check_would_see_a_write():
    """The pattern finds the store's own writes (so an empty result above means something), and
    every allowed file still exists and still writes (a stale exception is removed, not kept)."""
    for allowed in ALLOWED:
        assert writes_in(ROOT / allowed), f"{allowed} no longer writes: remove it from ALLOWED"
    assert WRITES.search('client.update_item(TableName=t, UpdateExpression="SET a = :a")')
    assert not WRITES.search('client.query(KeyConditionExpression="#q = :q")')
