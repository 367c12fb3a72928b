"""Who follows when: the arrival patterns of the benchmark, reproducible from a seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True)
class Pattern:
    name: str
    per_day: int  # followers spread at random over every day
    burst: int = 0  # followers arriving within burst_seconds of the first day
    burst_start: float = 10 * 3600  # seconds into the first day
    burst_seconds: float = 3600
    # 0: per_day arrives uniformly. Otherwise the rate follows 1 + daytime * cos(2π (t - 15:00) / 24 h):
    # busiest at 15:00 UTC, quietest at 03:00.
    daytime: float = 0.0

    def arrivals(self, days: float, seed: int = 4) -> list[float]:
        """Arrival times in seconds from the start of the simulation, oldest first."""
        rng = random.Random(f"{self.name}:{seed}")  # same traffic for every strategy
        span = days * DAY
        times = [self._spread(rng, span) for _ in range(round(self.per_day * days))]
        times += [self.burst_start + rng.uniform(0, self.burst_seconds) for _ in range(self.burst)]
        return sorted(times)

    def _spread(self, rng: random.Random, span: float) -> float:
        if not self.daytime:
            return rng.uniform(0, span)
        while True:  # rejection sampling from the daily curve
            t = rng.uniform(0, span)
            if rng.uniform(0, 1 + self.daytime) <= 1 + self.daytime * math.cos(2 * math.pi * (t - 15 * 3600) / DAY):
                return t

    def describe(self) -> str:
        text = f"{self.per_day:,}/day" + (" with a daytime peak" if self.daytime else "")
        if self.burst:
            within = "within an hour" if self.burst_seconds == 3600 else f"within {self.burst_seconds / 60:.0f} minutes"
            text = (text + " + " if self.per_day else "") + f"{self.burst:,} {within}"
        return text


STEADY = Pattern("steady", per_day=50)
QUIET = Pattern("quiet", per_day=2)
VIRAL = Pattern("viral", per_day=50, burst=2_500)
PATTERNS = (STEADY, QUIET, VIRAL)
# Backlogs deeper than a day's welcomes (bench.backlog): more than X's 1,440 DMs a day arrive.
GROWTH = Pattern("growth", per_day=3_000, daytime=0.6)
# 7,000 at once: within the ten minutes before the 10:00 run of the first day.
WAVE = Pattern("wave", per_day=0, burst=7_000, burst_start=9 * 3600 + 50 * 60, burst_seconds=600)
