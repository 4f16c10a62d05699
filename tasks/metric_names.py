"""Kaggle's names for evaluation metrics (a competition's `evaluationMetric`, Meta Kaggle's algorithm names) as
the kit's (tasks/metrics.py), in one table."""

from __future__ import annotations

import re

# Keys are names lower-cased with everything but letters and digits removed ("MAP@{K}" -> "mapk").
KAGGLE_NAMES = {
    "accuracy": ("categorizationaccuracy", "accuracy", "classificationaccuracy", "accuracyscore"),
    "log_loss": ("logloss", "multiclassloss", "multiclasslogloss", "mlogloss", "binarylogloss", "logarithmicloss",
                 "multiclasslogarithmicloss", "binarycrossentropy", "crossentropy", "categoricalcrossentropy"),
    "roc_auc": ("auc", "rocauc", "aucroc", "areaunderreceiveroperatingcharacteristiccurve", "areaunderroccurve",
                "areaunderthecurve", "meancolumnwiseauc", "mcauc", "columnwiseauc"),
    "f1_micro": ("f1micro", "microf1", "microf1score", "microaveragedf1score", "microaveragedfscore", "microfscore"),
    "f1_macro": ("f1macro", "macrof1", "macrof1score", "macrofscore", "macroaveragedf1score", "macroaveragedfscore"),
    "mean_f1": ("meanf1", "meanf1score", "meanfscore", "f1samples", "samplesf1"),
    "mean_f2": ("meanf2", "meanfscorebeta", "meanf2score", "f2score", "fbetascore", "meanfbetascore"),
    "quadratic_weighted_kappa": ("quadraticweightedkappa", "qwk", "quadraticweightedcohenskappa", "cohenskappa",
                                 "weightedkappa", "kappa"),
}
_LOOKUP = {alias: metric for metric, aliases in KAGGLE_NAMES.items() for alias in aliases}
_MAP_AT = re.compile(r"(?:map|meanaverageprecision(?:at)?)(\d+|k)?")


def metric_from_hint(hint: str | None, k: int | None = None) -> str | None:
    """Kaggle's evaluation metric name ("Categorization Accuracy", "Area Under Receiver Operating Characteristic
    Curve", "MAP@{K}", ...) or the kit's own name as the kit's, or None when it is none of those. `k`: K for a
    "MAP@{K}" that does not say it (the labels per answer in the sample submission; 5 when unknown)."""
    words = re.sub(r"[^a-z0-9]", "", (hint or "").lower())
    if not words:
        return None
    if words in _LOOKUP:
        return _LOOKUP[words]
    mean_average_precision = _MAP_AT.fullmatch(words)
    if mean_average_precision:
        given = mean_average_precision.group(1)
        value = int(given) if given and given.isdigit() else (k or 5)
        return f"map@{value}" if 1 <= value <= 10 else None
    return None
