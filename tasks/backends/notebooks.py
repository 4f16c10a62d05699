"""Notebook parameters, papermill's convention: defaults in a cell tagged `parameters`, overrides in a cell tagged
`injected-parameters` right after it, so that a notebook runs as it is and a push or a test sets what it needs."""

from __future__ import annotations

import ast

from tasks.errors import ConfigError


def _parameters_position(notebook: dict) -> int:
    for position, cell in enumerate(notebook["cells"]):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return position
    raise ConfigError("the notebook has no cell tagged 'parameters' to inject settings after")


def parameter_names(notebook: dict) -> list[str]:
    """The names a notebook's cell tagged `parameters` assigns (papermill's convention)."""
    tree = ast.parse("".join(notebook["cells"][_parameters_position(notebook)]["source"]))
    return [target.id for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)]


def inject_parameters(notebook: dict, values: dict, comment: str = "Parameters injected") -> dict:
    """The notebook with a cell tagged `injected-parameters` after its `parameters` cell, assigning `values`
    (names the parameters cell defines, values as Python literals); an unknown name is a ConfigError."""
    known = parameter_names(notebook)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"the notebook has no parameter {', '.join(unknown)}; its parameters are {', '.join(known)}")
    lines = [f"# {comment}\n"] + [f"{name} = {value!r}\n" for name, value in values.items()]
    injected = {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": lines}
    position = _parameters_position(notebook) + 1
    return {**notebook, "cells": [*notebook["cells"][:position], injected, *notebook["cells"][position:]]}
