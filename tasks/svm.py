"""A support-vector machine on pixels: the classical baseline, seconds on a small competition.

On the built-in digits an RBF SVM on the raw pixels reaches CV 0.985 in about 3 s, and it errs on other images
than a CNN does, so the two blend well (bench/RESULTS.md, "The default digits run"). Its cost grows with the
square of the training rows, so each fold trains on at most `svm_max_rows` of them.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from tasks.index import TEST, TRAIN
from tasks.members import (
    FoldFitter,
    MemberContext,
    capped_size,
    class_probabilities,
    for_task,
    load_images,
    strata,
)

MAX_SVM_SIZE = 32  # larger images are resized down: an SVM on raw pixels gains nothing from detail


def pixel_vectors(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W, C) as rows of floats in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def capped_rows(labels: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Positions of at most `max_rows` rows, drawn per class in proportion (all of them when there are fewer)."""
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == label))[:max(1, round(max_rows * np.mean(labels == label)))]
            for label in np.unique(labels)]
    return np.sort(np.concatenate(kept))


def svm_classifier(c: float, seed: int) -> CalibratedClassifierCV:
    """An RBF SVC whose decision values become probabilities by temperature scaling (one temperature for all
    classes, fitted on 3 internal folds: the argmax stays the SVM's, the blend gets calibrated probabilities)."""
    return CalibratedClassifierCV(SVC(C=c, kernel="rbf", gamma="scale", random_state=seed),
                                  method="temperature", cv=3, ensemble=False)


def fit_svm(context: MemberContext) -> FoldFitter:
    index, config, targets, outputs = context.index, context.train, context.targets, context.outputs
    channels = index.metadata["channels"]
    images, test_images = (pixel_vectors(load_images(index, split, channels, capped_size(index, MAX_SVM_SIZE)))
                           for split in (TRAIN, TEST))

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray, clock=None):
        rows = train_positions[capped_rows(strata(targets[train_positions]), config.svm_max_rows, context.seed)]
        model = for_task(svm_classifier(config.svm_c, context.seed), outputs).fit(images[rows], targets[rows])
        return class_probabilities(model, images[valid_positions], context.num_classes), \
            class_probabilities(model, test_images, context.num_classes), {}

    return FoldFitter(fit_fold, "svm on pixels")

