"""What a member's last layer, loss and probabilities are, for each task type.

Every member predicts probabilities (N, C), whatever the task: one column per class summing to 1 (multiclass,
ordinal, ranking), the negative and positive class of a binary task (its model has one output, a sigmoid), or one
independent probability per tag (multilabel: sigmoid outputs). Keras members end in logits, float32, and train on
them (`from_logits=True`); scikit-learn members give these probabilities directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SINGLE_LABEL = ("multiclass", "ordinal", "ranking")


@dataclass(frozen=True)
class Outputs:
    """A task type's outputs: `columns` probability columns (classes, or tags), from `units` logits."""

    task: str = "multiclass"
    columns: int = 2

    @property
    def units(self) -> int:
        """Logits of the model's last layer: one for a binary task (its sigmoid is the positive class)."""
        return 1 if self.task == "binary" else self.columns

    @property
    def sigmoid(self) -> bool:
        return self.task in ("binary", "multilabel")

    def keras_loss(self):
        import keras

        if self.sigmoid:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def keras_metrics(self) -> list:
        """The training history's accuracy: of the class (argmax), or of each sigmoid output (logit above 0)."""
        import keras

        if self.sigmoid:
            return [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
        return ["accuracy"]

    def fit_targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets as the loss takes them: class indices, or 0/1 floats per sigmoid output."""
        targets = np.asarray(targets)
        if self.task == "binary":
            return targets.astype(np.float32).reshape(-1, 1)
        if self.task == "multilabel":
            return targets.astype(np.float32)
        return targets.astype(np.int64)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Logits (N, units) as the probabilities every member gives (N, columns), in float32."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.sigmoid:
            positive = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
            return (np.concatenate([1 - positive, positive], axis=1) if self.task == "binary" else positive
                    ).astype(np.float32)
        exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)

    def loss(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """The mean loss of probabilities (log loss of the true class; binary cross-entropy per tag)."""
        probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
        targets = np.asarray(targets)
        if self.task == "multilabel":
            return float(-np.mean(targets * np.log(probabilities) + (1 - targets) * np.log(1 - probabilities)))
        return float(-np.mean(np.log(probabilities[np.arange(len(targets)), targets])))

    def accuracy(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """What the history calls accuracy: of the argmax class, or of each tag at 0.5."""
        if self.task == "multilabel":
            return float(np.mean((np.asarray(probabilities) >= 0.5) == np.asarray(targets).astype(bool)))
        return float(np.mean(np.asarray(probabilities).argmax(axis=1) == np.asarray(targets)))


def outputs_of(index) -> Outputs:
    """The outputs of a competition's members, from its index (its task and classes or tags)."""
    return Outputs(index.task, len(index.metadata["spec"]["class_names"]))
