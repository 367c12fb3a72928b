"""Who follows when: the arrival patterns of the benchmark, reproducible from a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True)
class Pattern:
    name: str
    per_day: int  # followers spread at random over every day
    burst: int = 0  # followers arriving within one hour of the first day
    burst_start: float = 10 * 3600  # seconds into the first day

    def arrivals(self, days: float, seed: int = 4) -> list[float]:
        """Arrival times in seconds from the start of the simulation, oldest first."""
        rng = random.Random(f"{self.name}:{seed}")  # same traffic for every strategy
        span = days * DAY
        times = [rng.uniform(0, span) for _ in range(round(self.per_day * days))]
        times += [self.burst_start + rng.uniform(0, 3600) for _ in range(self.burst)]
        return sorted(times)

    def describe(self) -> str:
        text = f"{self.per_day}/day"
        return text + (f" + {self.burst:,} within an hour" if self.burst else "")


STEADY = Pattern("steady", per_day=50)
QUIET = Pattern("quiet", per_day=2)
VIRAL = Pattern("viral", per_day=50, burst=2_500)
PATTERNS = (STEADY, QUIET, VIRAL)
