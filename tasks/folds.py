"""A member's finished folds on disk: what lets folds run as tasks of their own, and a killed member resume."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.files import atomic_write_bytes


@dataclass(frozen=True)
class FoldStore:
    """A member's finished folds on disk (`fold-<n>.npz`: the held-out rows' and the test set's probabilities and
    the history), so that folds can be fitted by separate tasks on any worker (mapped members x folds) and a
    killed run resumes at the fold it was in. A fold the time limit cut short is kept apart (`-partial`) and read
    only by a time-limited run. `only`: the folds this call may fit (None: all); the others are only read."""

    directory: Path
    only: tuple[int, ...] | None = None

    def path(self, fold: int, partial: bool = False) -> Path:
        return Path(self.directory) / f"fold-{int(fold)}{'-partial' if partial else ''}.npz"

    def may_fit(self, fold: int) -> bool:
        return self.only is None or int(fold) in self.only

    def load(self, fold: int, partial_ok: bool = False) -> tuple[np.ndarray, np.ndarray, dict, bool] | None:
        for partial in (False, True) if partial_ok else (False,):
            if self.path(fold, partial).is_file():
                with np.load(self.path(fold, partial)) as saved:
                    return saved["valid"], saved["test"], json.loads(str(saved["history"])), partial
        return None

    def save(self, fold: int, valid: np.ndarray, test: np.ndarray, history: dict, partial: bool) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, valid=np.asarray(valid, np.float32), test=np.asarray(test, np.float32),
                 history=json.dumps({name: [float(value) for value in values] for name, values in history.items()}))
        return atomic_write_bytes(self.path(fold, partial), buffer.getvalue())
