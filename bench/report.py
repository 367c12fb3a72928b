"""Plain-text tables of the benchmark's outcomes."""

from __future__ import annotations

import statistics

from bench.simulate import Outcome


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).rjust(w) if i else str(cell).ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _ratio(other: float, courtesy: float) -> str:
    return f"{other / courtesy:,.1f}×" if courtesy else "—"


def scenario(o: Outcome) -> str:
    return f"{o.account:,} {o.pattern}"


DETAIL_HEADERS = [
    "scenario", "strategy", "req/day", "users/day", "billed/day", "X $/day", "DMs/day", "429s",
    "lat p50", "p95", "max", "waiting", "missed", "DDB r/day", "DDB w/day", "CPU ms/run", "1st run users",
]  # fmt: skip


def detail_row(o: Outcome) -> list[str]:
    cpu = f"{statistics.median(o.cpu) * 1000:,.0f} (max {max(o.cpu) * 1000:,.0f})" if o.cpu else "—"
    star = "*" if o.computed else ""
    return [
        scenario(o),
        o.strategy,
        _n(o.per_day(o.requests)) + star,
        _n(o.per_day(o.users_read)) + star,
        _n(o.billed) + star,
        f"{o.bill:,.2f}",
        _n(o.per_day(o.dms)),
        _n(o.too_many_requests),
        _minutes(o.latency(0.5)),
        _minutes(o.latency(0.95)),
        _minutes(max(o.latencies, default=None)),
        _n(o.waiting),
        _n(o.missed),
        _n(None if o.db_reads is None else o.per_day(o.db_reads)),
        _n(None if o.db_writes is None else o.per_day(o.db_writes)),
        cpu,
        _n(o.first_run_users) + star,
    ]


HEADLINE_HEADERS = ["scenario", "new/day", "Courtesy billed/day", "$/day", "full scan billed", "$/day", "÷ Courtesy",
                    "newest 1,000 billed", "$/day", "÷ Courtesy"]  # fmt: skip


def headline_row(group: dict[str, Outcome]) -> list[str]:
    c, full, newest = group["Courtesy"], group["full scan"], group["newest 1,000"]
    return [
        scenario(c),
        _n(c.per_day(c.arrivals)),
        _n(c.billed),
        f"{c.bill:,.2f}",
        _n(full.billed) + ("*" if full.computed else ""),
        f"{full.bill:,.2f}",
        _ratio(full.bill, c.bill),
        _n(newest.billed),
        f"{newest.bill:,.2f}",
        _ratio(newest.bill, c.bill),
    ]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table (first column left, the rest right-aligned), ready for the README."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(headers) - 1)) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
