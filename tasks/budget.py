"""A run's time limit (`--time-limit MINUTES`, as AutoGluon's `time_limit`), shared out as the run goes.

The run gets a deadline (wall-clock seconds since the epoch, so that it means the same in every process
and thread a stage runs in). Before each member, what is left (less a reserve for the blend and the
submission) is shared equally among the members not yet trained; inside a member, folds train as usual
one after another, a fold ends its epochs when the next one would overrun the member's deadline (judged
by the epochs it has timed), and no fold starts that would not finish in time: the member keeps the
folds it finished, well trained, rather than every fold half-trained. A member that cannot start is
skipped. The blend uses the rows every member predicted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

RESERVE_FRACTION = 0.05  # of the limit, kept for the blend, the submission file and the upload
MIN_RESERVE_SECONDS = 10.0


def run_deadline(time_limit_minutes: float | None, started: float | None = None) -> float | None:
    """The wall-clock deadline of a run started at `started` (now) with this limit (None: no limit)."""
    if time_limit_minutes is None:
        return None
    return (started if started is not None else time.time()) + 60.0 * time_limit_minutes


def reserve_seconds(time_limit_minutes: float) -> float:
    """Seconds kept back from the members for the blend, the submission file and the upload."""
    return max(MIN_RESERVE_SECONDS, RESERVE_FRACTION * 60.0 * time_limit_minutes)


def member_deadline(deadline: float | None, reserve: float, members_left: int, now: float | None = None,
                    share: float | None = None) -> float | None:
    """This member's share of what is left before the run's deadline less the reserve (None: no limit): an equal
    one among the members left, or `share` where the plan bought its epochs with that share (tasks/plan.py)."""
    if deadline is None:
        return None
    now = time.time() if now is None else now
    share = share if share is not None and members_left > 1 else 1 / max(1, members_left)
    return now + max(0.0, deadline - reserve - now) * share


@dataclass
class Clock:
    """Times the repeated steps of one piece of work (folds, epochs) against a deadline."""

    deadline: float | None
    started: float | None = None  # default: now
    steps: int = 0
    ended_early: bool = False
    on_tick: Callable[[], None] | None = None  # told of every step (a progress bar's advance)
    now: Callable[[], float] = field(default=time.time, repr=False)  # the wall clock (a test's moves when told)

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.now()

    def tick(self) -> None:
        self.steps += 1
        if self.on_tick is not None:
            self.on_tick()

    def room_for_another(self, now: float | None = None) -> bool:
        """Whether one more step, as long as the mean step so far, ends before the deadline. False is
        remembered: the work ended early."""
        if self.deadline is None or self.steps == 0:
            return True
        now = self.now() if now is None else now
        room = now + (now - self.started) / self.steps <= self.deadline
        self.ended_early |= not room
        return room
