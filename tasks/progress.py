"""Progress bars for long work (rich)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second, e.g. images/s."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"- {self.unit}/s")


SHOW_BARS = True  # False in a Dask worker (flows/dask_worker.py): it runs one fold or shard of many

# Called with (description, done, total) at start, every 5 % and at the end: how an orchestrator shows progress
# (flows/orchestration.py registers a Prefect progress artifact) without the stages knowing it.
LISTENERS: list[Callable[[str, int, int], None]] = []


def _notify(description: str, done: int, total: int) -> None:
    for listener in LISTENERS:
        listener(description, done, total)


@contextmanager
def progress_bar(description: str, total: int, unit: str = "steps") -> Iterator:
    """Yield `advance(steps=1)`; shows done/total, the rate in `unit`/s, elapsed and remaining time.

    On stderr: stdout is for results (`--json` output must parse)."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
               TimeElapsedColumn(), TimeRemainingColumn()]
    done, reported = 0, -1

    def advance(steps: int = 1) -> None:
        nonlocal done, reported
        progress.update(task_id, advance=steps)
        done += steps
        step = 20 * done // max(total, 1)  # every 5 %
        if step != reported:
            reported = step
            _notify(description, done, total)

    with Progress(*columns, console=Console(stderr=True, quiet=not SHOW_BARS)) as progress:
        task_id = progress.add_task(description, total=total)
        _notify(description, 0, total)
        yield advance
