"""Output: tables on stdout, progress and errors on stderr; text from X shown safely."""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (so tests capture it); wide when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def clean(value: Any) -> str:
    """Text that came from X (names, usernames, error details) with control and bidi characters removed,
    so a display name cannot move the cursor, recolour the terminal or reorder a line."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\t\n\r" or category in ("Zl", "Zp"):
            out.append(" ")
        elif category[0] != "C" or ch == "\u200d":  # keep the zero-width joiner of emoji sequences
            out.append(ch)
    return "".join(out)


def cell(value: Any) -> Text:
    """A table cell that is never read as rich markup ("[bold]" in a display name stays literal)."""
    return Text(clean(value))


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(v if isinstance(v, Text) else cell(v) for v in row))
    return out


def progress() -> Progress:
    """A progress bar on stderr, gone when done; shows nothing when stderr is not a terminal."""
    err = console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def paged(description: str, pages: Iterator[dict[str, Any]], total: int | None) -> Iterator[dict[str, Any]]:
    """Items of DynamoDB pages, with a progress bar counting them."""
    with progress() as bar:
        task = bar.add_task(description, total=total or None)
        done = 0
        for page in pages:
            items = page.get("Items", [])
            done += len(items)
            if total and done > total:
                bar.update(task, total=done)  # ItemCount is refreshed only every few hours
            bar.update(task, advance=len(items))
            yield from items
