"""Backbones from KerasHub presets (`--backbone hub:PRESET`): a tiny preset saved to a local folder goes through the
feature cache, heads, fine-tuning and the kernel bundle; a named preset without its weights offline is one error
naming where to put them, never random weights."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.backbones import backbone_spec, build_extractor, resolve_weights, weights_hash
from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.hub import bundled_name, model_sources
from tests.factories import tiny_preset_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    return tiny_preset_folder(tmp_path_factory.mktemp("preset") / "tiny_vit")


def test_a_local_preset_is_a_frozen_extractor_with_its_preprocessing_inside(preset, tmp_path):
    spec = backbone_spec(f"hub:{preset}")
    assert (spec.builder, spec.input_size, spec.label) == ("hub", 32, "hub-tiny_vit") and spec.own_weights
    assert resolve_weights(spec, [tmp_path]) == preset and weights_hash(preset) != weights_hash(tiny_preset_folder(
        tmp_path / "other", size=24))
    extractor = build_extractor(spec, preset, 40)  # any input size: the preset's converter resizes
    images = np.random.default_rng(0).uniform(0, 255, (3, 40, 40, 3)).astype("float32")
    features = np.asarray(extractor(images, training=False))
    assert features.shape == (3, 16) and np.isfinite(features).all()  # the class token of a width-16 ViT
    assert not any(weight.trainable for weight in extractor.weights)


def test_a_named_preset_offline_is_one_error_naming_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("tasks.hub._download", lambda handle: None)  # offline: nothing to download
    with pytest.raises(WeightsUnavailableError, match=r"hub:dinov2_small: its weights are not here.*attach the model "
                                                      r"keras/dinov2/keras/dinov2_small/1"):
        resolve_weights(backbone_spec("hub:dinov2_small"), [tmp_path])
    with pytest.raises(ConfigError, match="unknown KerasHub preset 'nope'"):
        backbone_spec("hub:nope")


def test_kaggles_model_mount_is_found(preset, tmp_path, monkeypatch):
    monkeypatch.setattr("tasks.hub._download", lambda handle: pytest.fail("downloaded although attached"))
    mounted = tmp_path / "input" / "models" / "keras" / "dinov2" / "keras" / "dinov2_small" / "1"
    shutil.copytree(preset, mounted)
    assert resolve_weights(backbone_spec("hub:dinov2_small"), [tmp_path / "input"]) == mounted


def test_kernel_push_attaches_hub_models_and_bundles_local_presets(preset):
    members = (f"logistic@hub:{preset}", "finetune@hub:dinov2_small#1", "cnn")
    assert model_sources(("hub:clip_vit_base_patch16",), members) == (
        "keras/clip/keras/clip_vit_base_patch16/3", "keras/dinov2/keras/dinov2_small/1")
    assert bundled_name(f"logistic@hub:{preset}") == "logistic@hub:presets/tiny_vit"
    assert bundled_name("finetune@hub:dinov2_small#1") == "finetune@hub:dinov2_small#1"


def test_the_kit_bundle_carries_a_local_preset(preset, tmp_path):
    from tasks.backends.kernels import build_bundle

    folder = build_bundle(tmp_path / "bundle", "alice", presets=(preset,))
    with zipfile.ZipFile(folder / "headstart-kit.zip") as zipped:
        names = set(zipped.namelist())
    assert {"presets/tiny_vit/config.json", "presets/tiny_vit/model.weights.h5"} <= names


def test_heads_and_a_finetune_on_a_local_preset_through_the_cli(preset, digits_store, tmp_path, prefect_server):
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    backbone = f"hub:{preset}"
    result = runner.invoke(app, ["run", "--data-dir", str(data_dir), "--backbone", backbone, "--member", "logistic",
                                 "--member", f"finetune@{backbone}", "--folds", "2", "--finetune-size", "32",
                                 "--finetune-epochs", "1", "--no-submit"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads(Path(result.output.strip().splitlines()[-1]).read_text())
    assert set(record["members"]) == {f"logistic@{backbone}", f"finetune@{backbone}"}
    assert record["members"][f"logistic@{backbone}"] > 0.3  # chance is 0.1: random ViT features still separate
    features = list((data_dir / "03_features" / "local" / "digits").glob("hub-tiny_vit-identity-*/manifest.json"))
    assert len(features) == 1 and json.loads(features[0].read_text())["feature_width"] == 16
