"""What a budget buys the large grey recipe's CNN: epochs and folds planned from its measured cost per image."""

import dataclasses
import json
import time

import pytest

from tasks import budget_plan
from tasks.budget_plan import (
    MAX_EPOCHS_PER_FOLD,
    MIN_EPOCHS,
    PLAN_MARGIN,
    FoldShape,
    TrainingCost,
    cached_cost,
    fold_seconds,
    plan_epochs,
)
from tasks.config import Config, TrainConfig
from tasks.plan import budgeted_cnn, plan_members
from tasks.recipes import DIGITS_LARGE_RECIPE, DIGITS_RECIPE
from tasks.runplan import DevicePlan

COST = TrainingCost(train=0.004, predict=0.001, setup=5.0)
SHAPE = FoldShape(fit=30_000, stop=3_000, predict=26_000)  # 42,000 images, 5 folds: 120 + 3 s an epoch, 26 s more


def test_a_fold_costs_its_epochs_and_its_predictions():
    assert fold_seconds(COST, SHAPE, 10) == pytest.approx(10 * 123 + 26)
    shifted = dataclasses.replace(SHAPE, views=5)
    assert fold_seconds(COST, shifted, 10) == pytest.approx(10 * 123 + 130)
    pseudo = dataclasses.replace(SHAPE, second_round_epochs=2, second_round_rows=48_000)
    assert fold_seconds(COST, pseudo, 10) == pytest.approx(10 * 123 + 2 * (192 + 3) + 2 * 26)


def test_the_budget_buys_epochs_first_then_more_folds_and_never_fewer_than_the_minimum():
    folds, epochs = plan_epochs(1000, COST, SHAPE, 5)
    assert folds == 1 and epochs == 6 and fold_seconds(COST, SHAPE, epochs) + COST.setup <= 1000  # (800 - 31) / 123
    folds, epochs = plan_epochs(6000, COST, SHAPE, 5)
    assert folds == 2 and epochs <= MAX_EPOCHS_PER_FOLD  # 38 epochs' worth, more than one fold may take: two of 19
    planned = PLAN_MARGIN * 6000  # of the budget, planned
    assert 2 * fold_seconds(COST, SHAPE, epochs) + COST.setup <= planned < 2 * fold_seconds(COST, SHAPE, epochs + 1) + COST.setup
    assert plan_epochs(100_000, COST, SHAPE, 5)[0] == 5 and plan_epochs(100_000, COST, SHAPE, 5)[1] > 100  # all folds
    assert plan_epochs(10, COST, SHAPE, 5) == (1, MIN_EPOCHS)  # too little: the least that trains at all


def test_a_measured_cost_is_kept_for_the_next_plan(tmp_path):
    measured = []

    def measure():
        measured.append(1)
        return COST

    path = tmp_path / "costs" / "cnn.json"
    assert cached_cost(path, measure) == COST and cached_cost(path, measure) == COST and measured == [1]
    assert json.loads(path.read_text())["cost"] == dataclasses.asdict(COST)


def test_large_grey_competitions_get_the_deep_cnn_alone_at_full_size(tmp_path):
    plan = lambda config, num_train: plan_members(config, "pixels_csv", 1, [tmp_path], native_size=28,
                                                  num_train=num_train)
    large = plan(Config(), budget_plan.LARGE_GREY_IMAGES)
    assert large.members == DIGITS_LARGE_RECIPE and large.large_grey and large.cnn_size is None
    small = plan(Config(), budget_plan.LARGE_GREY_IMAGES - 1)
    assert small.members == DIGITS_RECIPE and not small.large_grey and small.cnn_size == 14
    assert not plan(Config(members=("cnn",)), 42_000).large_grey  # members named: the config decides
    assert not plan(Config(recipe="full"), 42_000).large_grey


METADATA = {"num_train": 42_000, "num_test": 18_000, "image_height": 28, "image_width": 28, "channels": 1,
            "spec": {"class_names": [str(digit) for digit in range(10)], "task": "multiclass"}}


@pytest.fixture
def measured(monkeypatch):
    """The CNN's cost, as if measured (the real measurement is tested with the CNN)."""
    calls = []

    def measure(shape, outputs, train, jit):
        calls.append((shape, train.cnn_architecture, train.batch_size))
        return COST

    monkeypatch.setattr("tasks.cnn.measure_cost", measure)
    return calls


def test_the_default_budget_has_a_floor_of_ten_minutes():
    assert budget_plan.default_budget_seconds(8_000) == budget_plan.MIN_DEFAULT_SECONDS == 600
    assert budget_plan.default_budget_seconds(42_000) == 42_000 * budget_plan.DEFAULT_SECONDS_PER_IMAGE


def test_the_default_budget_scales_with_the_training_images(tmp_path, measured):
    config = Config(data_dir=str(tmp_path), competition="big")
    train, budget = budgeted_cnn(config, config.train, METADATA, DevicePlan(), None)
    assert budget.budget_source == "default" and budget.budget_seconds == 42_000 * budget_plan.DEFAULT_SECONDS_PER_IMAGE
    assert (train.cnn_architecture, train.schedule, train.images_per_fold) == ("deep", "onecycle", None)
    assert (train.epochs, train.cnn_folds) == (budget.epochs, budget.folds) and train.patience == train.epochs
    assert measured == [((28, 28, 1), "deep", 128)]
    again, _ = budgeted_cnn(config, config.train, METADATA, DevicePlan(), None)
    assert again == train and len(measured) == 1  # measured once per data folder: an unchanged re-run plans the same


def test_a_longer_time_limit_buys_more_training(tmp_path, measured):
    def planned(minutes: float) -> TrainConfig:
        config = Config(data_dir=str(tmp_path), competition="big", time_limit=minutes)
        return budgeted_cnn(config, config.train, METADATA, DevicePlan(), time.time() + 60 * minutes)[0]

    short, long = planned(10), planned(90)
    assert short.epochs * short.cnn_folds < long.epochs * long.cnn_folds and long.cnn_folds > 1


def test_what_the_config_sets_stands(tmp_path, measured):
    asked = TrainConfig(epochs=2, cnn_architecture="small", learning_rate=0.01, tta_shifts=0, pseudo_epochs=0)
    config = Config(data_dir=str(tmp_path), competition="big", train=asked)
    train, budget = budgeted_cnn(config, asked, METADATA, DevicePlan(), None)
    assert (train.epochs, train.cnn_architecture, train.learning_rate, train.schedule) == (2, "small", 0.01, "onecycle")
    assert (train.tta_shifts, train.pseudo_epochs, train.cnn_filters) == (0, 0, 24)  # off when asked; the recipe's width
    # The default budget buys three folds of 2 epochs (299 s each: 33,600 training rows fitted, 2,000 watched).
    assert budget.budget_seconds // 299 == 3 and train.cnn_folds == budget.folds == 3
    folds_asked = dataclasses.replace(asked, epochs=TrainConfig().epochs, cnn_folds=2)
    assert budgeted_cnn(config, folds_asked, METADATA, DevicePlan(), None)[0].cnn_folds == 2


COLOUR = {"num_train": 5_000, "num_test": 2_000, "image_height": 32, "image_width": 32, "channels": 3,
          "same_size": True, "spec": {"class_names": [str(label) for label in range(10)], "task": "multiclass"}}
TUNING = TrainingCost(train=0.03, predict=0.01, setup=20.0)  # about what Lite0 at 128 px costs here
MEMBER = "finetune@file:lite0.keras"


@pytest.fixture
def tuning_measured(monkeypatch):
    """The finetune member's cost, as if measured (`test_fine_tuning_costs_are_measured_as_a_fold_trains`)."""
    calls = []

    def measure(backbone, weights, size, shape, outputs, train, jit):
        calls.append((backbone, size, shape, train.finetune_batch_size))
        return TUNING

    monkeypatch.setattr("tasks.finetune.measure_cost", measure)
    return calls


def test_the_finetune_members_epochs_are_bought_with_its_budget(tmp_path, tuning_measured):
    """Colour photos: the default budget scales with the training images and buys fine-tuning epochs (then folds),
    from the cost measured once per data folder; with --time-limit the member gets its share of what is left."""
    from tasks.budget_plan import FINETUNE_MAX_EPOCHS, FINETUNE_SECONDS_PER_IMAGE, FINETUNE_SHARE
    from tasks.plan import budgeted_finetune

    config = Config(data_dir=str(tmp_path), competition="photos")

    def plan(metadata, minutes=None, members=3, train=config.train):
        limited = dataclasses.replace(config, time_limit=minutes)
        return budgeted_finetune(limited, train, metadata, DevicePlan(), minutes and time.time() + 60 * minutes,
                                 MEMBER, {}, members)

    train, budget = plan(COLOUR)
    assert budget.budget_source == "default" and budget.member == MEMBER
    assert budget.budget_seconds == pytest.approx(5_000 * FINETUNE_SECONDS_PER_IMAGE)
    # An epoch: 4,000 rows trained, 1,000 watched; the fold predicts 3,000 rows twice (the mirror): 130 s + 60 s.
    per_epoch, rest = 4_000 * 0.03 + 1_000 * 0.01, 2 * 3_000 * 0.01
    assert (train.finetune_epochs, train.finetune_folds) == (budget.epochs, budget.folds) == (
        int((budget.budget_seconds - 20 - rest) // per_epoch), 1)  # a default budget is planned whole
    assert tuning_measured == [("file:lite0.keras", 128, (32, 32, 3), 32)]
    assert plan(COLOUR)[0] == train and len(tuning_measured) == 1  # measured once per data folder
    limited = plan(COLOUR, 60)[1]
    assert limited.budget_source == "--time-limit" and 0.9 * 3600 * FINETUNE_SHARE < limited.budget_seconds < 3600 * FINETUNE_SHARE
    alone = plan(COLOUR, 60, members=1)[1]
    assert limited.budget_seconds < alone.budget_seconds < 3600  # no other member to leave time for
    assert limited.epochs * limited.folds > budget.epochs * budget.folds
    hours = plan(COLOUR, 240)[1]  # more than FINETUNE_MAX_EPOCHS' worth: more fine-tuned folds
    assert hours.epochs <= FINETUNE_MAX_EPOCHS and hours.folds > 1
    folds_asked = dataclasses.replace(config.train, finetune_folds=3)
    assert plan(COLOUR, train=folds_asked)[0].finetune_folds == 3


def test_fine_tuning_costs_are_measured_as_a_fold_trains(tmp_path):
    from tasks.finetune import measure_cost
    from tasks.outputs import Outputs
    from tests.factories import tiny_backbone_file

    model = tiny_backbone_file(tmp_path / "tiny.keras")
    cost = measure_cost(f"file:{model}", model, 32, (16, 16, 3), Outputs("multiclass", 3),
                        TrainConfig(finetune_batch_size=4), steps=2)
    assert 0 < cost.train < 1 and 0 < cost.predict < 1 and cost.setup > 0


def large_grey_run(tmp_path, monkeypatch, *options: str, num_train: int = 150) -> tuple[str, dict, float]:
    """`headstart run` on a grey competition the large recipe takes (its threshold lowered to this one's size): the
    output, run.json, and the seconds it took."""
    from pathlib import Path

    from tests.factories import shapes_competition_args
    from tests.test_cli import invoke

    monkeypatch.setattr("tasks.plan.LARGE_GREY_IMAGES", 100)
    invoke(*shapes_competition_args(tmp_path, num_train=num_train))
    started = time.monotonic()
    output = invoke("run", "shapes", "--data-dir", tmp_path / "data", "--no-submit", *options)
    return output, json.loads(Path(output.strip().splitlines()[-1]).read_text()), time.monotonic() - started


@pytest.mark.slow  # 20 s: a run through the CLI, the CNN's cost measured for real
def test_a_large_grey_run_says_what_its_default_budget_bought(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setitem(budget_plan.DEFAULT_SECONDS, "cnn", 0.01)  # 1.5 s: the least that trains at all
    monkeypatch.setattr(budget_plan, "MIN_DEFAULT_SECONDS", 0.0)
    output, record, _ = large_grey_run(tmp_path, monkeypatch, "--folds", "3")
    budget = record["plan"]["budget"]
    assert list(record["members"]) == ["cnn"] and budget["budget_source"] == "default"
    assert (budget["folds"], budget["epochs"]) == (1, MIN_EPOCHS) and record["plan"]["train"]["cnn_folds"] == 1
    assert record["blend_rows_scored"] == 50  # one fold of three: the rows it predicted
    assert (f"budget 0.0 min (the default, 10 ms per training image; --time-limit MINUTES sets another): the CNN "
            f"planned {MIN_EPOCHS} epochs on 1 of 3 folds, planned from ") in " ".join(output.split())
    costs = list((tmp_path / "data" / "04_models" / "local" / "shapes" / "costs").glob("cnn-*.json"))
    assert len(costs) == 1


@pytest.mark.slow  # a minute and a half against the clock
def test_a_time_limit_is_filled_not_only_kept(prefect_server, tmp_path, monkeypatch):
    """The large grey recipe plans its CNN's epochs and folds from its measured cost to use the time it is given:
    the run ends within the limit, and not long before it."""
    limit = 1.5
    output, record, seconds = large_grey_run(tmp_path, monkeypatch, "--time-limit", str(limit), num_train=600)
    budget = record["plan"]["budget"]
    assert budget["budget_source"] == "--time-limit" and budget["epochs"] * budget["folds"] > 10
    # The plan spends PLAN_MARGIN (80 %) of what is left after start-up (about 30 s here) from a cost measured in
    # eight steps, which is off by up to a fifth either way on a 2-core machine whose load changes: 0.7 to 1.1.
    assert 0.7 * 60 * limit <= seconds <= 1.1 * 60 * limit, (seconds, budget)
    # The plan is as good as its eight-step cost measurement: on a busy 2-core machine it may buy a fold too many,
    # which the limit then cuts (kept whole folds stand); the budget must still have bought real training.
    ended = (record.get("time_limit") or {}).get("ended", {})
    assert all(kept >= 2 for kept in ended.values()), (ended, budget, output)


def test_the_run_line_says_when_the_floor_set_the_default_budget():
    from flows.cli.run import budget_line

    budget = {"budget_seconds": budget_plan.MIN_DEFAULT_SECONDS, "budget_source": "default", "epochs": 20, "folds": 2,
              "estimated_seconds": 590.0, "cost": dataclasses.asdict(COST), "member": "cnn"}
    assert budget_line(budget, 5).startswith("budget 10.0 min (the default, 26 ms per training image, at least 10 "
                                             "min; --time-limit MINUTES sets another): the CNN planned 20 epochs on 2 "
                                             "of 5 folds")
    assert "at least" not in budget_line(dict(budget, budget_seconds=1092.0), 5)
