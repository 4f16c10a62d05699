import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.backbones import BACKBONES, backbone_spec, build_extractor
from tasks.competitions import DIGIT_RECOGNIZER
from tasks.features import (
    Extractor,
    FeatureConfig,
    cache_feature_set,
    feature_directory,
    feature_key,
    load_features,
    plan_shards,
)
from tasks.index import ensure_index, read_index
from tests.factories import tiny_backbone_file, wait_until, write_digit_recognizer

CONFIG = FeatureConfig(batch_size=8, shard_size=16, image_size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    write_digit_recognizer(root / "raw", num_train=40, num_test=12)
    index_dir = ensure_index(DIGIT_RECOGNIZER, root / "raw", root / "index", folds=2, seed=0)
    model_path = tiny_backbone_file(root / "tiny.keras")
    return root, index_dir, model_path


def _extract(setup, directory, view="identity", config=CONFIG):
    _, index_dir, model_path = setup
    spec = backbone_spec(f"file:{model_path}")
    return cache_feature_set(read_index(index_dir), Extractor(spec, model_path, config.image_size), view, directory,
                             config)


def test_plan_covers_both_splits():
    shards = plan_shards(40, 12, 16)
    assert [(s["split"], s["start"], s["stop"]) for s in shards] == [
        ("train", 0, 16), ("train", 16, 32), ("train", 32, 40), ("test", 0, 12)]


def test_features_match_the_model_and_are_float16_shards(setup, tmp_path):
    root, index_dir, model_path = setup
    manifest = _extract(setup, tmp_path / "set")
    assert manifest["complete"] and manifest["feature_width"] == 12 and len(manifest["shards"]) == 4
    assert np.load(tmp_path / "set" / "train-00000.npy").dtype == np.float16
    train, test = load_features(tmp_path / "set")
    index = read_index(index_dir)
    import tensorflow as tf

    images = tf.image.resize(tf.image.grayscale_to_rgb(tf.cast(index.train_pixels[:5], tf.float32)), (32, 32),
                             antialias=True)
    expected = build_extractor(backbone_spec(f"file:{model_path}"), model_path, 32)(images).numpy()
    np.testing.assert_allclose(train[:5], expected, rtol=1e-2, atol=1e-2)  # float16 storage
    assert train.shape == (40, 12) and test.shape == (12, 12)


def test_second_run_does_no_forward_pass(setup, tmp_path):
    _extract(setup, tmp_path / "set")
    log = (tmp_path / "set" / "extractions.jsonl").read_text().splitlines()
    _extract(setup, tmp_path / "set")
    assert (tmp_path / "set" / "extractions.jsonl").read_text().splitlines() == log
    assert json.loads(log[0])["images"] == 52


def test_corrupted_shard_is_rebuilt(setup, tmp_path):
    _extract(setup, tmp_path / "set")
    good = np.load(tmp_path / "set" / "train-00001.npy")
    (tmp_path / "set" / "train-00001.npy").write_bytes(b"garbage")
    (tmp_path / "set" / "test-00000.npy").unlink()
    _extract(setup, tmp_path / "set")
    last = json.loads((tmp_path / "set" / "extractions.jsonl").read_text().splitlines()[-1])
    assert last["images"] == 16 + 12  # only the two bad shards
    np.testing.assert_array_equal(np.load(tmp_path / "set" / "train-00001.npy"), good)


def test_incomplete_set_is_refused(setup, tmp_path):
    _extract(setup, tmp_path / "set")
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    manifest["complete"] = False
    (tmp_path / "set" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="feature set incomplete"):
        load_features(tmp_path / "set")


def test_flip_view_differs(setup, tmp_path):
    _extract(setup, tmp_path / "identity")
    _extract(setup, tmp_path / "flip", view="flip")
    assert not np.allclose(load_features(tmp_path / "identity")[0], load_features(tmp_path / "flip")[0])


def test_key_changes_with_every_input():
    spec = BACKBONES["efficientnetb0"]
    base = feature_key("images", spec, "w", 224, "identity")
    others = [feature_key("images2", spec, "w", 224, "identity"),
              feature_key("images", BACKBONES["efficientnetb1"], "w", 224, "identity"),
              feature_key("images", dataclasses.replace(spec, preprocessing="x"), "w", 224, "identity"),
              feature_key("images", spec, "w2", 224, "identity"), feature_key("images", spec, "w", 96, "identity"),
              feature_key("images", spec, "w", 224, "flip")]
    assert len({base, *others}) == 7


def test_directory_depends_on_the_weights_file(setup, tmp_path):
    _, index_dir, model_path = setup
    index, spec = read_index(index_dir), backbone_spec(f"file:{model_path}")
    first = feature_directory(tmp_path, index, spec, model_path, "identity", CONFIG)
    other = tiny_backbone_file(tmp_path / "other.keras", seed=1)
    assert feature_directory(tmp_path, index, spec, other, "identity", CONFIG) != first


KILLED_RUN = """
import sys
from pathlib import Path
from tasks.backbones import backbone_spec
from tasks.features import Extractor, FeatureConfig, cache_feature_set
from tasks.index import read_index
index_dir, model, out = map(Path, sys.argv[1:4])
config = FeatureConfig(batch_size=4, shard_size=4, image_size=64)
extractor = Extractor(backbone_spec(f"file:{model}"), model, config.image_size)
cache_feature_set(read_index(index_dir), extractor, "identity", out, config)
"""


def test_sigkill_resumes_to_identical_features(setup, tmp_path):
    """Kill extraction for real after some shards, resume, and compare with an uninterrupted run."""
    _, index_dir, model_path = setup
    config = FeatureConfig(batch_size=4, shard_size=4, image_size=64)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(index_dir), str(model_path),
                                str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    manifest = tmp_path / "killed" / "manifest.json"
    try:
        wait_until(lambda: manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 2, 120,
                   "two shards extracted", process, interval=0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = json.loads(manifest.read_text())
    assert not state["complete"] and 2 <= len(state["shards"]) < 13, "the kill should land mid-extraction"
    done_before = len(state["shards"])
    resumed = _extract(setup, tmp_path / "killed", config=config)
    log = [json.loads(line) for line in (tmp_path / "killed" / "extractions.jsonl").read_text().splitlines()]
    assert resumed["complete"] and log[-1]["images"] <= 52 - 4 * done_before
    _extract(setup, tmp_path / "straight", config=config)
    for resumed_part, straight_part in zip(load_features(tmp_path / "killed"), load_features(tmp_path / "straight")):
        np.testing.assert_array_equal(resumed_part, straight_part)


def test_a_full_disk_while_writing_a_shard_is_one_clear_error_and_no_half_shard(setup, tmp_path, monkeypatch):
    """The disk fills up half-way through the second shard's file: a DiskFullError naming it (it used to be a bare
    OSError, a traceback at the command line), no half shard and no temporary file left, the first shard kept."""
    import errno
    import io

    from tasks import files
    from tasks.errors import DiskFullError, HeadstartError

    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, stream):
            self.stream = stream

        def write(self, payload):
            self.stream.write(bytes(payload)[: len(payload) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.stream.close()

    def fdopen(handle, mode="r", *args, **kwargs):
        stream = real_fdopen(handle, mode, *args, **kwargs)
        return FullDisk(stream) if ".train-00001.npy." in os.readlink(f"/proc/self/fd/{handle}") else stream

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    with pytest.raises(DiskFullError, match=r"train-00001\.npy: no space left on device") as caught:
        _extract(setup, tmp_path / "set")
    assert isinstance(caught.value, HeadstartError) and isinstance(caught.value, OSError)
    assert sorted(path.name for path in (tmp_path / "set").iterdir()) == ["manifest.json", "train-00000.npy",
                                                                          "train-00000.npy.json"]
    # The first shard is kept for the next run (resuming from kept shards: test_corrupted_shard_is_rebuilt).
    assert list(json.loads((tmp_path / "set" / "manifest.json").read_text())["shards"]) == ["train-00000.npy"]
