"""`headstart local create`: a local competition from a Kaggle zip or a TFDS dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import DataDir, console, new_app

local_app = new_app("Local competitions: made from a Kaggle zip or a TFDS dataset, scored here.")


@local_app.command("create")
def local_create(
    name: Annotated[str, typer.Argument(help="Name of the new local competition.")],
    from_zip: Annotated[Optional[Path], typer.Option("--from", help="A Kaggle-layout zip of the public files.")] = None,
    solution: Annotated[Optional[Path], typer.Option(help="Hidden solution CSV: id, answer[, Usage].")] = None,
    spec: Annotated[Optional[str], typer.Option(
        help="Built-in spec name or a .toml spec file (a .toml of only some keys: the rest inferred); without it "
             "the spec is inferred from the zip's files.")] = None,
    metric: Annotated[Optional[str], typer.Option(
        help="Score by this metric: accuracy, log_loss, roc_auc, f1_micro, f1_macro, mean_f1, mean_f2, "
             "map@1..map@10, quadratic_weighted_kappa (default: the obvious one for the submission's form).")] = None,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="A TFDS image-classification dataset.")] = None,
    tfds_data_dir: Annotated[Optional[Path], typer.Option(help="TFDS data_dir (default: TFDS's own).")] = None,
    max_train: Annotated[Optional[int], typer.Option(help="Keep at most this many training images (TFDS).")] = None,
    max_test: Annotated[Optional[int], typer.Option(help="Keep at most this many test images (TFDS).")] = None,
    daily_limit: Annotated[int, typer.Option(min=1, help="Submissions allowed per UTC day.")] = 5,
    data_dir: DataDir = Path("data"),
) -> None:
    """Make a local competition from a Kaggle zip (--from, --solution; its spec inferred or --spec) or a TFDS
    dataset (--tfds)."""
    from tasks.backends.local import create_local_competition, spec_for_zip, spec_option
    from tasks.errors import ConfigError
    from tasks.paths import DataPaths

    root = DataPaths(data_dir).local(name)
    if tfds:
        from tasks.backends.practice import create_from_tfds

        backend = create_from_tfds(root, name, tfds, tfds_data_dir, max_train, max_test, daily_limit)
    elif from_zip and solution:
        if (root / "competition.json").exists():
            raise ConfigError(f"{root}: a local competition named {name!r} exists already")
        chosen, lines = spec_for_zip(name, from_zip, spec_option(spec), metric)
        backend = create_local_competition(root, name, chosen, from_zip, solution, daily_limit)
        for line in lines:
            console.print(line, soft_wrap=True, markup=False, highlight=False)
    else:
        raise ConfigError("give either --tfds DATASET, or --from ZIP --solution CSV (and --spec SPEC or --metric "
                          "NAME if need be)")
    spec_in_use = backend.spec
    console.print(f"created local competition {name!r} ({spec_in_use.layout}, {spec_in_use.task}, "
                  f"{spec_in_use.num_classes} classes, metric {spec_in_use.metric}) at {root}", soft_wrap=True,
                  markup=False, highlight=False)
