"""A member's finished folds on disk: what lets folds run as units of their own, and a killed member resume."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.files import atomic_write_bytes


@dataclass(frozen=True)
class SavedFold:
    """One fitted fold as stored: the held-out rows' and the test set's probabilities, the training history, whether
    the time limit cut it short, and the seconds it took."""

    valid: np.ndarray
    test: np.ndarray
    history: dict
    partial: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class FoldStore:
    """A member's finished folds on disk (`fold-<n>.npz`), so that folds can be fitted by separate units on any
    worker and a killed run resumes at the fold it was in. A fold the time limit cut short is kept apart
    (`-partial`) and read only by a time-limited run."""

    directory: Path

    def path(self, fold: int, partial: bool = False) -> Path:
        return Path(self.directory) / f"fold-{int(fold)}{'-partial' if partial else ''}.npz"

    def load(self, fold: int, partial_ok: bool = False) -> SavedFold | None:
        for partial in (False, True) if partial_ok else (False,):
            if self.path(fold, partial).is_file():
                with np.load(self.path(fold, partial)) as saved:
                    seconds = float(saved["seconds"]) if "seconds" in saved.files else 0.0
                    return SavedFold(saved["valid"], saved["test"], json.loads(str(saved["history"])), partial, seconds)
        return None

    def save(self, fold: int, valid: np.ndarray, test: np.ndarray, history: dict, partial: bool,
             seconds: float = 0.0) -> Path:
        buffer = io.BytesIO()
        np.savez(buffer, valid=np.asarray(valid, np.float32), test=np.asarray(test, np.float32), seconds=seconds,
                 history=json.dumps({name: [float(value) for value in values] for name, values in history.items()}))
        return atomic_write_bytes(self.path(fold, partial), buffer.getvalue())
