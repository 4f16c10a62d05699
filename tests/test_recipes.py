import pytest

from tasks.backbones import BACKBONES
from tasks.config import Config, FeatureConfig, TrainConfig
from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.plan import plan_members
from tasks.recipes import DIGITS_FULL_RECIPE, DIGITS_RECIPE, MemberName, default_members, expand_members
from tests.factories import tiny_backbone_file


def test_member_names_round_trip():
    name = MemberName.parse("mlp@efficientnetb0#2")
    assert (name.kind, name.backbone, name.seed) == ("mlp", "efficientnetb0", 2) and str(name) == "mlp@efficientnetb0#2"
    assert MemberName.parse("cnn").seed == 0 and str(MemberName.parse("cnn#0")) == "cnn"


@pytest.mark.parametrize("name, message", [
    ("forest", "unknown member kind 'forest'"), ("logistic", "need @BACKBONE"), ("cnn@vgg16", "take none"),
    ("cnn#x", "whole number"), ("cnn#²", "whole number"),
])
def test_bad_member_names(name, message):
    with pytest.raises(ConfigError, match=message):
        MemberName.parse(name)


def test_heads_expand_over_backbones():
    assert expand_members(("cnn", "logistic"), ("vgg16", "xception")) == ("cnn", "logistic@vgg16", "logistic@xception")


def test_default_recipes():
    assert default_members("pixels_csv", 1, ()) == DIGITS_RECIPE
    assert default_members("image_folder", 3, ("vgg16",)) == ("finetune@vgg16", "logistic@vgg16", "mlp@vgg16")
    assert default_members("image_folder", 3, ()) == ("cnn#0",)


@pytest.fixture
def offline(monkeypatch):
    """No network: Keras' download fails as it does offline, whether or not this machine is online."""
    attempts = []

    def fail(spec):
        attempts.append(spec.name)
        raise WeightsUnavailableError(f"{spec.name}: download failed (URLError)")

    monkeypatch.setattr("tasks.backbones.download_weights", fail)
    return attempts


def test_default_backbone_without_weights_is_skipped_with_one_warning(tmp_path, offline):
    warnings = []
    plan = plan_members(Config(), "image_folder", 3, [tmp_path], warn=warnings.append)
    assert offline == ["efficientnetb0"]  # the download was tried, and failed
    assert plan.members == ("cnn#0",) and plan.weights == {}
    assert len(warnings) == 1 and BACKBONES["efficientnetb0"].weights_file in warnings[0]


def test_named_backbone_without_weights_fails(tmp_path, offline):
    with pytest.raises(WeightsUnavailableError, match=BACKBONES["vgg16"].weights_file):
        plan_members(Config(backbones=("vgg16",)), "image_folder", 3, [tmp_path])


def test_plan_with_local_weights_and_files(tmp_path, offline):
    weights = tmp_path / BACKBONES["vgg16"].weights_file
    weights.write_bytes(b"x")
    mine = tiny_backbone_file(tmp_path / "mine.keras")
    plan = plan_members(Config(backbones=("vgg16", f"file:{mine}")), "image_folder", 3, [tmp_path])
    assert plan.weights == {"vgg16": weights, f"file:{mine}": mine}
    assert plan.members == ("finetune@vgg16", f"finetune@file:{mine}", "logistic@vgg16", f"logistic@file:{mine}",
                            "mlp@vgg16", f"mlp@file:{mine}")
    assert plan.image_size == Config().train.finetune_size  # the heads share the fine-tuning size's features
    assert plan_members(Config(backbones=("vgg16",), members=("logistic",)), "image_folder", 3,
                        [tmp_path]).image_size is None  # no finetune: each backbone's native size


def test_random_weights_only_when_asked(tmp_path, offline):
    config = Config(members=("logistic",), backbones=("vgg16",), features=FeatureConfig(weights="none"))
    assert plan_members(config, "pixels_csv", 1, [tmp_path]).weights == {"vgg16": None}
    assert offline == []  # random weights need no download


def test_a_run_of_pixel_members_looks_for_no_backbone(tmp_path, offline):
    """A softmax-only run on photos builds and downloads no backbone (a download prints to stdout)."""
    choice = plan_members(Config(members=("softmax",)), "image_folder", 3, [tmp_path])
    assert choice.members == ("softmax",) and choice.weights == {} and offline == []


def test_views_follow_the_images(tmp_path):
    assert plan_members(Config(), "pixels_csv", 1, [tmp_path]).views == ("identity",)
    assert plan_members(Config(), "image_folder", 3, [tmp_path], warn=lambda _: None).views == ("identity", "flip")
    config = Config(features=FeatureConfig(views=("flip",)))
    assert plan_members(config, "pixels_csv", 1, [tmp_path]).views == ("flip",)


def test_the_full_recipe_and_the_default_digits_cnn_at_half_size(tmp_path):
    assert default_members("pixels_csv", 1, (), "full") == DIGITS_FULL_RECIPE
    assert default_members("image_folder", 3, ("vgg16",), "full") == default_members("image_folder", 3, ("vgg16",))
    plan = lambda config, native=28: plan_members(config, "pixels_csv", 1, [tmp_path], native_size=native)
    assert plan(Config()).cnn_size == 14 and plan(Config(), native=64).cnn_size == 32
    assert plan(Config(), native=20).cnn_size == 14 and plan(Config(), native=10).cnn_size == 10  # never below 14
    assert plan(Config(recipe="full")).cnn_size is None  # full size
    assert plan(Config(members=("cnn",))).cnn_size is None  # members named by the user: the config decides
    assert plan(Config(train=TrainConfig(cnn_size=20))).cnn_size is None  # the config's own size stands


def test_an_unknown_recipe_is_a_config_error():
    with pytest.raises(ConfigError, match="recipe must be 'default' or 'full', got 'fast'"):
        Config(recipe="fast")


@pytest.mark.slow  # about three minutes: the default digits recipe, trained for real
def test_the_default_digits_recipe_reaches_its_cv_floor(digits_store, tmp_path):
    """The default `headstart run` (digits) must keep CV >= 0.99 (issue 10), as the blend scores on rows its weights
    never saw (the nested estimate), while training in minutes (README: under 3 minutes for the whole command)."""
    import shutil
    import time

    from tasks import stages
    from tasks.record import RunRecord

    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    started = time.monotonic()
    record = RunRecord.read(stages.compete(Config(data_dir=str(data_dir), submit=False)))
    seconds = time.monotonic() - started
    assert set(record.members) == {"svm", "cnn"} and record.plan["cnn_size"] == 14
    assert record.blend_nested_cv_score >= 0.99, (record.members, record.blend_nested_cv_score)
    assert seconds < 180, f"the default digits recipe took {seconds:.0f} s"


@pytest.mark.slow  # about three minutes here: three CNNs at full size, on two folds of eight epochs
def test_the_full_recipe_trains_three_cnns_at_full_size(prefect_server, digits_store, tmp_path, monkeypatch):
    """`headstart run --recipe full` on the built-in digits: three CNN members (seeds 0, 1, 2), each built at the
    native 28 px (none halved in the plan), three different models, each far above chance (0.1) after a few
    epochs, and a blend of them that holds up on rows its weights never saw."""
    import json
    import shutil
    from pathlib import Path

    import numpy as np
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks import cnn
    from tasks.fitting import load_member
    from tasks.record import RunRecord

    built, real_cnn_model = [], cnn.cnn_model
    monkeypatch.setattr(cnn, "cnn_model", lambda shape, *arguments: built.append(tuple(shape)) or real_cnn_model(
        shape, *arguments))  # Prefect runs the tasks in this process's threads
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    result = CliRunner().invoke(app, ["run", "digits", "--recipe", "full", "--epochs", "8", "--folds", "2",
                                      "--no-submit", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    record = RunRecord.read(Path(json.loads(result.stdout)["run_json"]))
    assert record.plan["members"] == list(DIGITS_FULL_RECIPE) and list(record.members) == ["cnn", "cnn#1", "cnn#2"]
    assert record.plan["cnn_size"] is None and built == [(28, 28, 1)] * 3
    oofs = [load_member(Path(directory))[1] for directory in record.member_dirs]
    assert not np.allclose(oofs[0], oofs[1]) and not np.allclose(oofs[1], oofs[2])  # three seeds, three models
    print(f"members {record.members}, blend {record.blend_cv_score:.4f}, nested {record.blend_nested_cv_score:.4f}")
    assert all(score > 0.4 for score in record.members.values()), record.members
    assert record.blend_nested_cv_score > max(record.members.values())  # three seeds blend better than one
