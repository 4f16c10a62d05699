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


def parameter_defaults(notebook: dict) -> dict:
    """The values the `parameters` cell assigns (literals only)."""
    tree = ast.parse("".join(notebook["cells"][_parameters_position(notebook)]["source"]))
    defaults = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        defaults[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        defaults[target.id] = None
    return defaults


def options_as_parameters(notebook: dict, options: dict, source: str = "the notebook") -> dict:
    """Run options (`{"backbone": ["x"], "epochs": 3}`, by the run options' names) as the notebook's parameters
    (`BACKBONE = "x"`, `EPOCHS = 3`): each option goes to the parameter of its name in capitals; a repeatable option
    given once fills a parameter that holds one value. An option the notebook has no parameter for is an error
    naming the ones it takes."""
    defaults, values = parameter_defaults(notebook), {}
    for name, value in options.items():
        parameter = name.upper()
        if parameter not in defaults:
            takes = sorted(key.lower() for key in defaults if key not in ("COMPETITION", "SPEC", "DATA_DIR"))
            raise ConfigError(f"{source} takes no option {name!r}; it takes {', '.join(takes)}")
        if isinstance(value, (list, tuple)) and not isinstance(defaults[parameter], (list, tuple)):
            if len(value) != 1:
                raise ConfigError(f"{source} takes one {name}, got {list(value)}")
            value = value[0]
        values[parameter] = list(value) if isinstance(value, tuple) else value
    return values
