"""`headstart spec`: the spec a run of a competition uses, shown as TOML or saved for editing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import Backend, Competition, DataDir, Spec, console


def spec(
    competition: Competition,
    write: Annotated[bool, typer.Option(
        "--write", help="Save it as data/01_raw/<competition>/spec.toml, where Kaggle runs find it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --write: replace an existing spec.toml.")] = False,
    data_dir: DataDir = Path("data"),
    backend: Backend = "local",
    spec: Spec = None,
) -> None:
    """Show a competition's spec as TOML: built in, from --spec, saved, or inferred from its files (downloaded
    first if need be); --write saves it for editing."""
    from tasks.backends import save_spec, spec_in_use
    from tasks.errors import ConfigError
    from tasks.paths import DataPaths
    from tasks.spec_inference import spec_toml

    paths = DataPaths(data_dir)
    found, source = spec_in_use(competition, paths, backend, spec)
    if not write:
        console.print(spec_toml(found, header=f"Spec of {competition!r}, {source}."), end="", soft_wrap=True,
                      markup=False, highlight=False)
        return
    if backend != "kaggle":
        raise ConfigError("a local competition keeps its spec in its competition.json; --write saves the spec of a "
                          "Kaggle competition (--backend kaggle)")
    path = save_spec(found, source, paths, force)
    console.print(f"spec of {competition!r} ({source}) written to {path}", soft_wrap=True, markup=False,
                  highlight=False)
