"""Progress bars for the commands people run by hand (``kubeface enrol``, ``kubeface post``):
on stderr, and only when it is a terminal, so logs and pipes stay clean. ``rich`` is imported
only then: the services' own runs (an enrolment Job, a supervisor) never load it."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def bars(console: Console, disable: bool = False) -> Progress:
    """A progress display: description, bar, done/total and the time spent."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=disable)


def track[T](items: Sequence[T], description: str,
             console: Console | None = None) -> Iterator[T]:
    """Yield ``items`` while a bar shows how many are done."""
    if console is None:
        if not sys.stderr.isatty():
            yield from items
            return
        from rich.console import Console

        console = Console(stderr=True)
    with bars(console, disable=not console.is_terminal) as progress:
        yield from progress.track(items, total=len(items), description=description)
