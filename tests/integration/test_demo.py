"""`make demo` works on a fresh machine and shows what it says: every mode, nobody messaged twice.

Run as `make demo` runs it, in its own process (moto's state is per process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_every_mode_and_messages_nobody_twice():
    done = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # dm mode: three welcomes; reply mode: one answer, and one opt-out confirmation to the person answered; digest: none.
    assert re.search(r"The sandbox's own DM log: 5 DMs, 4 of them welcomes to 4 people, at most 1 each", out), out[-2000:]
    assert "sandbox received DM to @linus_t: Hi Linus" in out
    assert "sandbox received DM to @linus_t: Got it, Linus" in out
    assert "sandbox received DM to @robin_q" not in out, "someone Courtesy never wrote to got a confirmation"
    assert re.search(r"Subject: Courtesy digest \d{4}-\d\d-\d\d: 2 new followers to welcome", out)
    assert out.index("@margaret_h") < out.index("@dennis_r"), "notable followers come first in the digest"
