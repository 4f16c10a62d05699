"""Progress bars for long work (rich)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
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


def _short(description: str, width: int) -> str:
    """A description that leaves the bar room: its end kept (a shard or fold number is what tells bars apart)."""
    return description if len(description) <= width else "…" + description[-(width - 1):]


@contextmanager
def progress_bar(description: str, total: int, unit: str = "steps") -> Iterator:
    """Yield `advance(steps=1, ran_steps=True)`. In a terminal: a bar with done/total, the rate in `unit`/s, elapsed and remaining
    time, fitted to the terminal's width (80 columns included). Elsewhere (a log, CI): one plain line when the work
    ends, e.g. `EfficientNet [identity] train-00000: 2,048 images in 7.3 s (280.5 images/s)`.

    On stderr: stdout is for results (`--json` output must parse)."""
    console = Console(stderr=True, quiet=not SHOW_BARS)
    done, reported, started = 0, -1, time.perf_counter()
    if console.is_terminal:
        width = max(20, min(40, console.width - 52))  # the columns after the description take about 50
        columns = [TextColumn(escape(_short(description, width))), BarColumn(bar_width=None if console.width >= 120 else 12),
                   MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(), TimeRemainingColumn()]
        progress = Progress(*columns, console=console)
    else:
        progress = None

    ran = 0  # the steps that ran (the bar is also filled for those early stopping skipped: `ran=False`)

    def advance(steps: int = 1, ran_steps: bool = True) -> None:
        nonlocal done, reported, ran
        if progress is not None:
            progress.update(task_id, advance=steps)
        done += steps
        ran += steps if ran_steps else 0
        step = 20 * done // max(total, 1)  # every 5 %
        if step != reported:
            reported = step
            _notify(description, done, total)

    if progress is None:
        _notify(description, 0, total)
        yield advance
        seconds = time.perf_counter() - started
        rate = f" ({ran / seconds:,.1f} {unit}/s)" if seconds > 0 and ran else ""
        console.print(f"{description}: {ran:,} {unit} in {seconds:.1f} s{rate}", soft_wrap=True, highlight=False,
                      markup=False)
        return
    with progress:
        task_id = progress.add_task(description, total=total)
        _notify(description, 0, total)
        yield advance
