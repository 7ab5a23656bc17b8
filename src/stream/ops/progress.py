"""Progress bars for long commands (``produce``, ``dlq replay``, ``webhooks redeliver``,
``bench``), drawn with rich on standard error; nothing is drawn when it is not a terminal,
so scripted output stays clean."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["bar", "progress"]

T = TypeVar("T")


def progress(*, transient: bool = False) -> Progress:
    """A rich Progress on standard error (disabled when standard error is not a terminal)."""
    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=transient, disable=not console.is_terminal)


def bar(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar labelled ``label``."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress() as p:
        task = p.add_task(label, total=total)
        for item in items:
            yield item
            p.advance(task)
