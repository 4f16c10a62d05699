"""Pictures people would rather look at: training curves and confusion matrices, as PNG files."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from tasks.files import atomic_write_bytes  # noqa: E402


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_training_curves(histories: list[dict], title: str, path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, one line per fold."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for fold, history in enumerate(histories):
        for axis, metric in zip(axes, ("loss", "accuracy")):
            for prefix, style in (("", "-"), ("val_", "--")):
                if f"{prefix}{metric}" in history:
                    axis.plot(history[f"{prefix}{metric}"], style, color=f"C{fold}",
                              label=f"fold {fold} {'valid' if prefix else 'train'}")
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncols=2)
    return _save(figure, path)


def plot_confusion_matrix(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], title: str,
                          path: Path) -> Path:
    """Out-of-fold confusion matrix, rows normalised to the true class."""
    size = max(5, 0.5 * len(class_names))
    figure, axis = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        labels, probabilities.argmax(axis=1), labels=list(range(len(class_names))), display_labels=class_names,
        normalize="true", values_format=".2f", ax=axis, colorbar=False, xticks_rotation=45)
    axis.set_title(title)
    return _save(figure, path)
