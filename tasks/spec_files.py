"""Specs as hand-editable TOML files (commented, read back to the same spec) and as one line for the user."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tasks.competitions import CompetitionSpec
from tasks.files import atomic_write_text

INFERRED_HEADER = ("Inferred by headstart from the files in this folder. Edit any key and run again;\n"
                   "`headstart spec {slug}` shows the spec in use.")
COMMENTS = {
    "layout": "pixels_csv (label + pixel columns), image_folder or image_csv (id/label CSV + image folders), "
              "class_folders (train/<class>/<image>) or filename_labels (train/<label>.<n>.jpg)",
    "class_names": "in the order of the submission's probability columns, or of the labels (binary: negative, "
                   "positive; ordinal: the grades in order)",
    "submission_form": "label, probabilities (one column per class), probability (binary), tags or ranked",
    "task": "multiclass, binary, multilabel, ordinal or ranking",
    "metric": "accuracy, log_loss, roc_auc, f1_micro, f1_macro, mean_f1, mean_f2, map@1..map@10 or "
              "quadratic_weighted_kappa (the metrics of the task)",
    "extra_train_csvs": "more labelled pixel CSVs to train on (Kannada-MNIST's Dig-MNIST.csv)",
    "image_shape": "height, width, channels (for pixel CSVs; informative for image folders)",
}
FORM_WORDS = {"label": "{column}", "probabilities": "one column per class", "tags": "{column} (space-separated tags)",
              "probability": "{column} (the probability of {positive})",
              "ranked": "{column} ({k} labels, most likely first)"}


def describe_spec(spec: CompetitionSpec, metric_hint: str | None = None, why: str | None = None) -> str:
    """One line: layout, task, classes, submission form and metric (and why that metric)."""
    classes = ", ".join(spec.class_names[:5]) + (", ..." if spec.num_classes > 5 else "")
    answer = FORM_WORDS[spec.submission_form].format(column=spec.submission_label_column, k=spec.top_k,
                                                     positive=spec.class_names[-1])
    scored = f" (Kaggle: {metric_hint})" if metric_hint else f" ({why})" if why else ""
    source = spec.train_csv if spec.layout in ("pixels_csv", "image_csv", "image_folder") else f"{spec.train_images}/"
    what = "grades" if spec.task == "ordinal" else "tags" if spec.task == "multilabel" else "classes"
    return (f"spec of {spec.slug!r}: {spec.layout} from {source}, {spec.task}, {spec.num_classes} {what} ({classes}); "
            f"submission {spec.sample_submission}: {spec.submission_id_column} + {answer}; "
            f"metric {spec.metric}{scored}")


def spec_toml(spec: CompetitionSpec, header: str = "") -> str:
    """The spec as a commented TOML file that tomllib reads back to the same spec; unset keys are commented out."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for field in dataclasses.fields(CompetitionSpec):
        value, comment = getattr(spec, field.name), COMMENTS.get(field.name)
        if value is None:
            lines.append(f"# {field.name} = (not used)")
            continue
        lines += [f"# {comment}"] if comment else []
        lines.append(f"{field.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_spec_toml(spec: CompetitionSpec, path: Path, header: str = "") -> Path:
    """Write the spec's TOML atomically; returns the path."""
    return atomic_write_text(Path(path), spec_toml(spec, header))


def _toml_value(value) -> str:
    if isinstance(value, tuple):
        items = [_toml_value(item) for item in value]
        inline = f"[{', '.join(items)}]"
        return inline if len(inline) <= 80 else "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    if isinstance(value, int):
        return str(value)
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(f"\\u{ord(character):04x}" if ord(character) < 0x20 or ord(character) == 0x7F
                      else "\\" + character if character in '"\\' else character for character in text)
    return f'"{escaped}"'
