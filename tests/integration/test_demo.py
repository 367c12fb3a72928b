"""`make demo` works on a fresh machine and shows what it says: every mode, webhook delivery in
seconds, nobody messaged twice.

Run as `make demo` runs it, in its own process (moto's state is per process); the demo writes the
sandbox's own records (`--record`) for the checks that should not rest on its narration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Demo:
    out: str
    sandbox: dict  # the sandbox's own records (tools.demo --record)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    """One `make demo` for the module's tests."""
    record = tmp_path_factory.mktemp("demo") / "sandbox.json"
    command = [sys.executable, "-m", "tools.demo", "--record", str(record)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)  # noqa: S603 - our own demo
    assert done.returncode == 0, done.stderr[-2000:]
    return Demo(done.stdout, json.loads(record.read_text()))


def test_the_demo_runs_every_mode_and_messages_nobody_twice(demo):
    out = demo.out
    # dm mode: three welcomes; reply mode: one answer, and one opt-out confirmation to the person answered; digest: none;
    # webhook: one welcome in dm mode, one answer in reply mode.
    assert re.search(r"The sandbox's own DM log: 7 DMs, 6 of them welcomes to 6 people, at most 1 each", out), out[-2000:]
    assert "sandbox received DM to @linus_t: Hi Linus" in out
    assert "sandbox received DM to @linus_t: Got it, Linus" in out
    assert "sandbox received DM to @robin_q" not in out, "someone Courtesy never wrote to got a confirmation"
    assert re.search(r"Subject: Courtesy digest \d{4}-\d\d-\d\d: 2 new followers to welcome", out)
    assert out.index("@margaret_h") < out.index("@dennis_r"), "notable followers come first in the digest"


def test_the_demo_welcomes_through_the_webhook_in_seconds(demo):
    out = demo.out
    segment = out[out.index("7. Delivery=webhook") : out.index("Run summaries:")]
    # Registered by the operator's own command, and X's CRC check reached the local receiver.
    assert "$ courtesy --secret" in segment and "webhook setup --url http://127.0.0.1:" in segment
    assert "valid: yes" in segment and "X validated the webhook" in segment
    welcomed = float(re.search(r"@alan_t welcomed (\d+\.\d) s after following", segment).group(1))
    answered = float(re.search(r"@barbara_l answered (\d+\.\d) s after writing", segment).group(1))
    assert welcomed < 30 and answered < 30, "seconds, not the next 15-minute slot"
    assert "DMs to @barbara_l: 0" in segment, "reply mode sent something on a follow alone"
    assert "new DMs: 0" in segment, "a replayed event welcomed someone again"
    assert "unsigned: 401; wrongly signed: 401; messages in the queue: 0" in segment

    # From the sandbox's own records: each webhook newcomer got exactly one DM, within seconds of X's delivery.
    sandbox = demo.sandbox
    dms: dict[str, list[dict]] = {}
    for dm in sandbox["dm_log"]:
        dms.setdefault(sandbox["usernames"][dm["recipient_id"]], []).append(dm)
    assert len(dms["alan_t"]) == 1 and len(dms["barbara_l"]) == 1
    assert all(len([d for d in sent if not d["text"].startswith("Got it")]) == 1 for sent in dms.values()), "a second welcome"
    assert [c["valid"] for c in sandbox["crc_requests"]] == [True]
    first = [d for d in sandbox["webhook_deliveries"] if not d["replay"]]
    again = [d for d in sandbox["webhook_deliveries"] if d["replay"]]
    assert [(d["event_type"], d["status"]) for d in first] == [("follow.follow", 200), ("follow.follow", 200), ("dm.received", 200)]
    assert sorted(d["event_uuid"] for d in again) == sorted(d["event_uuid"] for d in first)
    assert all(d["status"] == 200 for d in again)
    for username, delivery in (("alan_t", first[0]), ("barbara_l", first[2])):
        sent = datetime.fromisoformat(dms[username][0]["created_at"]).timestamp()
        assert 0 <= sent - delivery["at"] < 30, (username, sent - delivery["at"])
