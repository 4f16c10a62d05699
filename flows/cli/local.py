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
    solution: Annotated[Optional[Path], typer.Option(help="Hidden solution CSV: id, label[, Usage].")] = None,
    spec: Annotated[Optional[str], typer.Option(help="Built-in spec name or a .toml spec file.")] = None,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="A TFDS image-classification dataset.")] = None,
    tfds_data_dir: Annotated[Optional[Path], typer.Option(help="TFDS data_dir (default: TFDS's own).")] = None,
    max_train: Annotated[Optional[int], typer.Option(help="Keep at most this many training images (TFDS).")] = None,
    max_test: Annotated[Optional[int], typer.Option(help="Keep at most this many test images (TFDS).")] = None,
    daily_limit: Annotated[int, typer.Option(min=1, help="Submissions allowed per UTC day.")] = 5,
    data_dir: DataDir = Path("data"),
) -> None:
    """Make a local competition from a Kaggle zip (--from, --solution, --spec) or a TFDS dataset (--tfds)."""
    from tasks.backends.local import create_local_competition
    from tasks.competitions import resolve_spec
    from tasks.errors import ConfigError
    from tasks.paths import DataPaths

    root = DataPaths(data_dir).local(name)
    if tfds:
        from tasks.backends.practice import create_from_tfds

        backend = create_from_tfds(root, name, tfds, tfds_data_dir, max_train, max_test, daily_limit)
    elif from_zip and solution and spec:
        backend = create_local_competition(root, name, resolve_spec(spec), from_zip, solution, daily_limit)
    else:
        raise ConfigError("give either --tfds DATASET, or all of --from ZIP --solution CSV --spec SPEC")
    console.print(f"created local competition {name!r} ({backend.spec.layout}, {backend.spec.num_classes} classes) "
                  f"at {root}", soft_wrap=True, markup=False)
