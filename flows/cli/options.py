"""The run options on the command line: `@with_run_options` gives a command every option of flows/options.py, and
`--config FILE`, and hands it the resolved Config and Runner. `run`, `watch`, `serve` and `kernel push` share them."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from flows.options import (
    OPTIONS_BY_NAME,
    RUN_OPTIONS,
    Runner,
    RunOption,
    apply_options,
    file_names_competition,
    option_default,
    read_options_file,
)

DataDirOption = typer.Option("--data-dir", envvar="HEADSTART_DATA",
                             help="Root of the data layers (default ./data, or $HEADSTART_DATA).")
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", metavar="FILE", help="Run options from a file: a .toml whose keys are these options' long names "
    "(member = [\"cnn\"], time_limit = 20), or a recorded run.json to run again as it was. Options given here "
    "override it.")]


def _annotation(option: RunOption):
    """The typer annotation of one run option (its default is None: 'not given', so a file's value can stand)."""
    text = option.help + (f" [default: {_shown_default(option)}]" if not option.flag else "")
    if option.flag:
        return Annotated[bool, typer.Option(f"--{option.name}", help=option.help, show_default=False)], False
    kind = list[str] if option.kind is list else option.kind
    metavar = option.metavar or ("|".join(option.choices) if option.choices else "TEXT")
    settings = dict(help=text, show_default=False, metavar=metavar)
    if option.minimum is not None:
        settings["min"] = option.minimum
    return Annotated[Optional[kind], typer.Option(f"--{option.name}", **settings)], None


def _shown_default(option: RunOption) -> str:
    return option.default_text or str(option_default(option))


def given_options(context, values: dict[str, Any]) -> dict[str, Any]:
    """The run options set on the command line (or by an environment variable), checked as a file's would be."""
    given = {}
    for name, value in values.items():
        source = context.get_parameter_source(name)  # typer's own click or click's: compared by name
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP") or value is None:
            continue
        option = OPTIONS_BY_NAME[name]
        if option.choices and value not in option.choices:
            raise typer.BadParameter(f"{value!r} is not one of {list(option.choices)}", param_hint=f"'--{option.name}'")
        given[name] = tuple(value) if isinstance(value, list) else value
    return given


def with_run_options(command, needs_competition: bool = False):
    """Give `command` every run option and `--config FILE`; it is called with `config` (Config) and `runner`
    (Runner) resolved from: defaults < the file < the command line. Its own `competition` and `data_dir`
    parameters (None when not given) fall back to the file's, then to `digits` and `data` (with
    `needs_competition`, a competition named neither on the command line nor in the file is an error)."""
    signature = inspect.signature(command, eval_str=True)  # typer needs the annotations' objects
    own = [parameter for name, parameter in signature.parameters.items() if name not in ("config", "runner")]
    added = []
    for option in RUN_OPTIONS:
        annotation, default = _annotation(option)
        added.append(inspect.Parameter(option.python_name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                       annotation=annotation))
    added.append(inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigFile))
    added.append(inspect.Parameter("typer_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

    @functools.wraps(command)
    def wrapper(**arguments):
        context = arguments.pop("typer_context")
        values = {option.python_name: arguments.pop(option.python_name) for option in RUN_OPTIONS}
        config_file = arguments.pop("config_file")
        from tasks.config import Config
        from tasks.errors import ConfigError

        named = arguments.get("competition") is not None or (config_file and file_names_competition(config_file))
        if needs_competition and not named:
            raise ConfigError(f"`{context.command_path}` needs a competition: name it, or give a "
                              "--config file that names one")
        config, runner = read_options_file(config_file) if config_file else (None, Runner())

        config = config or Config()
        given = given_options(context, values)
        for name in ("competition", "data_dir"):
            if arguments.get(name) is not None:
                given[name] = str(arguments[name])
        config, runner = apply_options(config, runner, given)
        return command(config=config, runner=runner, **arguments)

    wrapper.__signature__ = signature.replace(parameters=own + added)
    wrapper.__annotations__ = {parameter.name: parameter.annotation for parameter in own + added}
    return wrapper
