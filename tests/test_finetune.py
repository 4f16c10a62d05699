"""The fine-tuning member: what it trains and what it must leave alone, and `--member finetune@...` end to end."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tasks.backbones import backbone_spec, build_extractor, weighted_layers
from tasks.config import TrainConfig
from tasks.errors import ConfigError
from tasks.finetune import finetune_model, head_model, unfreeze_top
from tasks.members import train_keras_model
from tests.factories import shapes_competition_args, tiny_backbone_file
from tests.test_cli import invoke


def test_fine_tuning_trains_the_unfrozen_top_only_and_never_batchnorm_statistics(tmp_path):
    spec = backbone_spec(f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}")
    extractor = build_extractor(spec, None, 16)
    assert unfreeze_top(extractor, 0.34) == 1  # of conv, BatchNorm, conv: the top conv only
    first_conv, batchnorm, top_conv = weighted_layers(extractor)
    assert isinstance(batchnorm, keras.layers.BatchNormalization) and not batchnorm.trainable
    model = finetune_model(extractor, head_model(np.ones((4, 12), "float32"), 3), (8, 8, 3), 16, flip=True)
    before = {layer.name: [np.array(w) for w in layer.weights] for layer in (first_conv, batchnorm, top_conv)}
    head_before = np.array(model.get_layer("head").get_layer("logits").kernel)

    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 255, (48, 8, 8, 3)).astype("float32"), np.arange(48) % 3
    config = TrainConfig(epochs=3, batch_size=8, learning_rate=0.05, patience=10)
    train_keras_model(model, (images[:40], labels[:40]), (images[40:], labels[40:]), config)

    for weights_before, weights_after in zip(before[first_conv.name], first_conv.weights):
        np.testing.assert_array_equal(weights_before, weights_after)  # frozen
    for weights_before, weights_after in zip(before[batchnorm.name], batchnorm.weights):
        np.testing.assert_array_equal(weights_before, weights_after)  # gamma, beta, moving mean and variance
    assert not np.allclose(before[top_conv.name][0], top_conv.kernel)  # unfrozen: trained
    assert not np.allclose(head_before, model.get_layer("head").get_layer("logits").kernel)


def test_the_unfrozen_fraction_is_checked(tmp_path):
    extractor = build_extractor(backbone_spec(f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}"), None, 16)
    with pytest.raises(ConfigError, match="finetune_fraction"):
        unfreeze_top(extractor, 0.0)
    assert unfreeze_top(extractor, 1.0) == 2  # both convolutions, never the BatchNorm


def test_run_a_finetune_member_end_to_end(prefect_server, tmp_path):
    """Fine-tuned on one fold of three (the CPU default): the blend is fitted and scored on that fold's rows,
    and the CLI says so."""
    invoke(*shapes_competition_args(tmp_path))
    data_dir = tmp_path / "data"
    backbone = f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}"
    output = invoke("run", "shapes", "--data-dir", data_dir, "--member", f"finetune@{backbone}", "--member",
                    f"logistic@{backbone}", "--folds", "3", "--finetune-size", "32", "--finetune-epochs", "2",
                    "--no-submit")
    record = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    assert list(record["members"]) == [f"finetune@{backbone}", f"logistic@{backbone}"]
    assert record["blend_rows"] == 150 and record["blend_rows_scored"] == 50  # one fold of three
    assert "on the 50 of 150 training rows that every member predicted" in output
    member = json.loads(next((data_dir / "05_predictions" / "local" / "shapes" / "members").glob("finetune*/member.json"))
                        .read_text())
    assert member["rows_predicted"] == 50 and len(member["epochs_per_fold"]) == 1
    assert record["members"][f"finetune@{backbone}"] > 0.5  # chance is 1/3
    assert pd.read_csv(record["submission"]).shape == (12, 2)


def test_a_run_buys_its_fine_tuning_epochs_with_the_budget_and_says_so(prefect_server, tmp_path, monkeypatch):
    """Without --finetune-epochs, the finetune member's epochs (and folds) are planned from its cost per image
    measured here and the default budget per training image; the CLI prints what the budget bought, and the
    member trains exactly that."""
    from tasks import budget_plan

    monkeypatch.setitem(budget_plan.DEFAULT_SECONDS, "finetune", 0.1)  # 15 s for these 150 images
    monkeypatch.setattr(budget_plan, "MIN_DEFAULT_SECONDS", 0.0)
    invoke(*shapes_competition_args(tmp_path))
    data_dir = tmp_path / "data"
    backbone = f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}"
    output = invoke("run", "shapes", "--data-dir", data_dir, "--member", f"finetune@{backbone}", "--folds", "3",
                    "--finetune-size", "32", "--no-submit")
    record = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    budget = record["plan"]["budget"]
    assert budget["member"] == f"finetune@{backbone}" and budget["budget_seconds"] == pytest.approx(15.0)
    assert (f"budget 0.2 min (the default, 100 ms per training image; --time-limit MINUTES sets another): "
            f"finetune@{backbone} planned {budget['epochs']} epochs on {budget['folds']} of 3 folds") in output
    member = json.loads(next((data_dir / "05_predictions" / "local" / "shapes" / "members").glob("finetune*/member.json"))
                        .read_text())
    assert member["epochs_per_fold"] == [budget["epochs"]] * budget["folds"]


@pytest.mark.slow  # a minute against the clock
def test_a_time_limit_is_kept_and_the_run_says_what_it_cut(prefect_server, tmp_path):
    """Three CNNs x 5 folds x up to 40 epochs take minutes on these images; with 40 seconds the run ends
    members early or skips them, blends what finished and says so, within 10 % of the limit."""
    import time

    invoke(*shapes_competition_args(tmp_path, num_train=600))
    data_dir = tmp_path / "data"
    started = time.monotonic()
    output = invoke("run", "shapes", "--data-dir", data_dir, "--member", "cnn", "--member", "cnn#1", "--member",
                    "cnn#2", "--time-limit", "0.67", "--no-submit")
    elapsed = time.monotonic() - started
    record = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    assert elapsed <= 1.1 * 0.67 * 60, elapsed
    report = record["time_limit"]
    assert report["ended"] or report["skipped"], report
    assert "time limit 0.67 min: " in output and "the blend is of what finished" in output
    assert set(record["members"]) | set(report["skipped"]) == {"cnn", "cnn#1", "cnn#2"}
    assert pd.read_csv(record["submission"]).shape == (12, 2)
