"""The run options, defined once: `headstart run`, `watch`, `serve`, `kernel push`, prefect.yaml's deployments and a
notebook's parameters all take these, by the same long names, from the command line or from a file.

A file of options (`--config run.toml`) holds the long option names without dashes as keys, `time_limit` or
`time-limit` alike: `member = ["softmax", "cnn"]`, `folds = 3`, `time_limit = 20`. A recorded run
(`--config data/05_predictions/<backend>/<comp>/<run>/run.json`) gives its whole config and runner back, so the run
is repeated as it was. Options given on the command line override the file. Plain Python: no typer, no Prefect
(a Kaggle notebook reads these too).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import Config, config_from_dict
from tasks.errors import ConfigError


@dataclass(frozen=True)
class Runner:
    """Where a run's tasks run: the orchestrator's business, not the stages'."""

    task_runner: str = "threads"  # or "dask": shards and folds as mapped tasks on a Dask cluster
    dask_address: str | None = None  # an existing scheduler for "dask" (else a local cluster sized to the machine)

    def __post_init__(self) -> None:
        if self.task_runner not in ("threads", "dask"):
            raise ConfigError(f"task_runner must be 'threads' or 'dask', got {self.task_runner!r}")
        if self.dask_address is not None and self.task_runner != "dask":
            raise ConfigError("dask_address is for task_runner 'dask' (--task-runner dask --dask-address HOST:PORT)")


@dataclass(frozen=True)
class RunOption:
    """One run option: its long name, where its value goes (`train.epochs`, `runner.task_runner`), its type, and
    what the command line shows."""

    name: str
    target: str
    kind: type = str  # str, int, float, bool, or list (of strings, repeatable)
    help: str = ""
    metavar: str | None = None
    minimum: float | None = None
    flag: bool = False  # a boolean switch named `--name` whose presence sets `value_when_set`
    value_when_set: Any = True
    choices: tuple[str, ...] = ()
    default_text: str | None = None  # how --help shows the default when it is not a plain value

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")


AUTO_ON_OFF = ("auto", "on", "off")
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("backend", "backend", help="local (a competition under data/local/) or kaggle.", choices=("local", "kaggle")),
    RunOption("spec", "spec", help="Spec of a Kaggle competition without a built-in one: a .toml file, or a local "
              "competition's competition.json (see README, Competition specs).", metavar="FILE",
              default_text="built in, or saved beside the competition's files"),
    RunOption("no-submit", "submit", bool, "Write the submission but do not send it.", flag=True, value_when_set=False),
    RunOption("message", "message", help="The submission's description."),
    RunOption("member", "members", list, "Member KIND[@BACKBONE][#SEED] (repeatable): softmax, svm, cnn, logistic, "
              "mlp, finetune; e.g. cnn#1 (a second seed), logistic@efficientnetb0, mlp@file:my.keras.",
              metavar="KIND[@BACKBONE][#SEED]", default_text="the recipe's"),
    RunOption("recipe", "recipe", help="default, or full: the slower, stronger recipe where one exists (grey digits: "
              "three CNNs at full size). Ignored with --member.", choices=("default", "full")),
    RunOption("backbone", "backbones", list, "Backbone for feature heads (repeatable): a registry name or "
              "file:PATH.keras.", metavar="NAME", default_text="efficientnetb0 for photos, where its weights are"),
    RunOption("weights-dir", "weights_dirs", list, "Folder searched first for backbone weights files (repeatable).",
              metavar="FOLDER", default_text="Keras' cache, then /kaggle/input"),
    RunOption("view", "features.views", list, "Feature views (repeatable): identity, flip.", metavar="VIEW",
              default_text="identity, and flip for colour images"),
    RunOption("image-size", "features.image_size", int, "Backbone input size.", metavar="PIXELS", minimum=16,
              default_text="the backbone's own, or --finetune-size with a finetune member"),
    RunOption("random-weights", "features.weights", bool, "Registry backbones with random weights (tests and "
              "benchmarks only).", flag=True, value_when_set="none"),
    RunOption("blend", "blend", help="mean, weights or caruana.", choices=("mean", "weights", "caruana")),
    RunOption("folds", "folds", int, "Stratified CV folds.", metavar="N", minimum=2),
    RunOption("epochs", "train.epochs", int, "Most epochs per fold (early stopping ends sooner).", metavar="N",
              minimum=1, default_text="40; planned from the budget for large grey competitions"),
    RunOption("seed", "seed", int, "Seed for folds and training.", metavar="N"),
    RunOption("finetune-size", "train.finetune_size", int, "finetune members: image size they train at.",
              metavar="PIXELS", minimum=32),
    RunOption("finetune-folds", "train.finetune_folds", int, "finetune members: folds fine-tuned (the blend is "
              "scored on their rows).", metavar="N", minimum=1, default_text="1, or more where the budget buys them"),
    RunOption("finetune-epochs", "train.finetune_epochs", int, "finetune members: epochs of fine-tuning per fold.",
              metavar="N", minimum=1, default_text="planned from the budget (the "
              "run prints it)"),
    RunOption("finetune-head", "train.finetune_head", help="finetune members: the head warmed up on the frozen "
              "features first: adam (a Dense layer trained 30 epochs) or logistic (a regression solved to "
              "convergence).", choices=("adam", "logistic")),
    RunOption("cnn-architecture", "train.cnn_architecture", help="cnn members: small (two blocks) or deep (three, "
              "BatchNorm throughout).", choices=("small", "deep"), default_text="deep for large grey competitions, "
              "else small"),
    RunOption("cnn-folds", "train.cnn_folds", int, "cnn members: folds fitted (the first N; the blend is scored on "
              "their rows).", metavar="N", minimum=1, default_text="planned from the budget for large grey "
              "competitions, else all"),
    RunOption("label-smoothing", "train.label_smoothing", float, "Keras members: the loss's label smoothing.",
              metavar="X", minimum=0.0),
    RunOption("ema", "train.ema", float, "Keras members: the optimiser's moving average of the weights, at this "
              "momentum (e.g. 0.999; 0: off).", metavar="MOMENTUM", minimum=0.0),
    RunOption("mixup", "train.mixup", float, "Keras members on images (cnn, finetune, softmax): MixUp's alpha on "
              "each batch (0: off).", metavar="ALPHA", minimum=0.0),
    RunOption("cutmix", "train.cutmix", float, "Keras members on images (cnn, finetune, softmax): CutMix's factor on "
              "each batch (0: off).", metavar="X", minimum=0.0),
    RunOption("lr-range-test", "train.lr_range_test", bool, "Keras members: each fold picks its learning rate by "
              "a range test on its training rows (a tenth of the rate where the loss fell lowest; cnn, finetune and "
              "mlp).", flag=True, value_when_set=True),
    RunOption("random-erasing", "train.random_erasing", float, "cnn members: RandomErasing's factor (0: off).",
              metavar="X", minimum=0.0),
    RunOption("randaugment", "train.randaugment", int, "cnn members: RandAugment's operations per image (0: off).",
              metavar="N", minimum=0),
    RunOption("tta-shifts", "train.tta_shifts", int, "cnn members: predictions also average four copies shifted "
              "by this many pixels (0: off).", metavar="PIXELS", minimum=0),
    RunOption("pseudo-epochs", "train.pseudo_epochs", int, "cnn members: epochs of a second round that adds the test "
              "images predicted with confidence (0: off).", metavar="N", minimum=0),
    RunOption("pseudo-threshold", "train.pseudo_threshold", float, "cnn members: the top probability a test image "
              "needs to join the second round.", metavar="P", minimum=0.0),
    RunOption("pseudo-weight", "train.pseudo_weight", float, "cnn members: the sample weight of those test images.",
              metavar="W", minimum=0.0),
    RunOption("time-limit", "time_limit", float, "Finish within this many minutes: members share the time, those "
              "that would overrun end early (keeping their finished folds) or are skipped.", metavar="MINUTES",
              minimum=0.1, default_text="none"),
    RunOption("mixed-precision", "device.mixed_precision", help="mixed_float16 compute (auto: where a GPU is found).",
              choices=AUTO_ON_OFF),
    RunOption("xla", "device.jit_compile", help="XLA-compiled extraction and training steps (auto: on one GPU).",
              choices=AUTO_ON_OFF),
    RunOption("multi-gpu", "device.multi_gpu", help="MirroredStrategy over every visible GPU (auto: when there "
              "are several).", choices=AUTO_ON_OFF),
    RunOption("task-runner", "runner.task_runner", help="Where tasks run: threads (this process), or dask: feature "
              "shards and members x folds as mapped tasks on a Dask cluster (local, one worker per core, unless "
              "--dask-address).", choices=("threads", "dask")),
    RunOption("dask-address", "runner.dask_address", help="An existing Dask scheduler for --task-runner dask "
              "(workers need headstart installed and the data folder at the same path).", metavar="HOST:PORT",
              default_text="a local cluster"),
)
OPTIONS_BY_NAME = {option.python_name: option for option in RUN_OPTIONS}
# Besides the options, a file may name the competition and the data folder (the command's argument and --data-dir).
FILE_ONLY = {"competition": "competition", "data_dir": "data_dir"}


def option_default(option: RunOption) -> Any:
    """The option's value when nobody sets it: the Config's (or Runner's) own default."""
    holder, _, name = option.target.rpartition(".")
    if holder == "runner":
        return getattr(Runner(), name)
    block = getattr(Config(), holder) if holder else Config()
    return getattr(block, name)


def checked_value(option: RunOption, value: Any, source: str) -> Any:
    """A value from a file as the option takes it, or a ConfigError naming the file and key."""
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{source}: key {option.python_name!r}: expected {expected}, got {value!r}")

    if option.kind is list:
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise wrong('a list of strings, e.g. ["cnn", "svm"]')
        return tuple(value)
    if option.kind is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if option.kind in (int, float):
        numeric = isinstance(value, int) or (option.kind is float and isinstance(value, float))
        if isinstance(value, bool) or not numeric:
            raise wrong("a whole number" if option.kind is int else "a number")
        if option.minimum is not None and value < option.minimum:
            raise wrong(f"a number >= {option.minimum:g}")
        return option.kind(value)
    if not isinstance(value, str) or (option.choices and value not in option.choices):
        raise wrong(f"one of {list(option.choices)}" if option.choices else "a string")
    return value


def apply_options(config: Config, runner: Runner, values: dict[str, Any]) -> tuple[Config, Runner]:
    """Set run options (by python name, values as the options take them) onto a Config and a Runner."""
    for name, value in values.items():
        if name in FILE_ONLY:
            config = dataclasses.replace(config, **{FILE_ONLY[name]: str(value)})
            continue
        option = OPTIONS_BY_NAME[name]
        if option.flag:
            value = option.value_when_set if value else option_default(option)
        holder, _, field = option.target.rpartition(".")
        if holder == "runner":
            runner = dataclasses.replace(runner, **{field: value})
        elif holder:
            config = dataclasses.replace(config, **{holder: dataclasses.replace(getattr(config, holder), **{field: value})})
        else:
            config = dataclasses.replace(config, **{field: value})
    return config, runner


def read_options_file(path: Path) -> tuple[Config, Runner]:
    """The Config and Runner a file of options gives: a TOML file of run options, or a recorded run's run.json."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: options file not found (--config takes a .toml file of run options or a run.json)")
    if path.suffix == ".json":
        from tasks.record import RunRecord

        record = RunRecord.read(path)
        return record.run_config(), Runner(**record.runner) if record.runner else Runner()
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    return apply_options(Config(), Runner(), options_from_mapping(values, str(path)))


def file_names_competition(path: Path) -> bool:
    """Whether a file of options names its competition (a run.json always does)."""
    if Path(path).suffix == ".json":
        return True
    try:
        return "competition" in tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def options_from_mapping(values: dict, source: str) -> dict[str, Any]:
    """A file's (or a notebook's, or a deployment's) option values, keys normalised to python names and values
    checked; an unknown key is an error naming it and the known ones."""
    checked = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in FILE_ONLY:
            if not isinstance(value, str):
                raise ConfigError(f"{source}: key {key!r}: expected a string, got {value!r}")
            checked[name] = value
        elif name in OPTIONS_BY_NAME:
            checked[name] = checked_value(OPTIONS_BY_NAME[name], value, source)
        else:
            known = sorted([*FILE_ONLY, *OPTIONS_BY_NAME])
            raise ConfigError(f"{source}: unknown key {key!r}; the keys are the run options' long names: {known}")
    return checked


def options_of(config: Config, runner: Runner = Runner()) -> dict[str, Any]:
    """A Config and Runner as option values that differ from the defaults (what a notebook or a deployment is given
    to run the same)."""
    values = {"competition": config.competition}
    for option in RUN_OPTIONS:
        holder, _, field = option.target.rpartition(".")
        source = runner if holder == "runner" else getattr(config, holder) if holder else config
        value = getattr(source, field)
        if value == option_default(option):
            continue
        values[option.python_name] = (value == option.value_when_set) if option.flag else \
            list(value) if isinstance(value, tuple) else value
    return values


def config_json(config: Config) -> dict:
    """A Config as JSON values (a deployment's parameters; Prefect validates them back into a Config)."""
    return json.loads(json.dumps(config.to_dict()))


def config_from_json(values: dict) -> Config:
    return config_from_dict(values, source="parameters")
