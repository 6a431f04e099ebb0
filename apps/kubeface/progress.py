"""Progress bars for the commands people run by hand (``kubeface enrol``, ``kubeface post``):
on stderr, and only when it is a terminal, so logs and pipes stay clean."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def bars(console: Console, disable: bool = False) -> Progress:
    """A progress display: description, bar, done/total and the time spent."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=disable)


def track[T](items: Sequence[T], description: str,
             console: Console | None = None) -> Iterator[T]:
    """Yield ``items`` while a bar shows how many are done."""
    console = console or Console(stderr=True)
    with bars(console, disable=not console.is_terminal) as progress:
        yield from progress.track(items, total=len(items), description=description)
