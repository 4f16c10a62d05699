import json

import numpy as np
import pytest

from tasks.competitions import CIFAR_10, DIGIT_RECOGNIZER
from tasks.errors import CompetitionDataError
from tasks.index import assign_folds, ensure_index, read_index
from tests.factories import write_cifar, write_digit_recognizer


def test_folds_are_stratified():
    labels = np.repeat(np.arange(3), 10)
    folds = assign_folds(labels, folds=5, seed=0)
    for fold in range(5):
        assert np.bincount(labels[folds == fold], minlength=3).tolist() == [2, 2, 2]


def test_too_few_examples_per_class():
    with pytest.raises(CompetitionDataError, match=r"class index 2 has 1 training examples; 5-fold"):
        assign_folds(np.array([0] * 10 + [1] * 10 + [2]), folds=5, seed=0)


def test_index_of_pixel_competition(tmp_path):
    write_digit_recognizer(tmp_path / "raw")
    index = read_index(ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", tmp_path / "index", folds=3, seed=0))
    train, test = index.split("train"), index.split("test")
    assert len(train) == 60 and len(test) == 20 and set(train["fold"]) == {0, 1, 2}
    assert (test["fold"] == -1).all() and index.train_pixels.shape == (60, 28, 28, 1)
    assert index.metadata["channels"] == 1


def test_index_of_image_folders(tmp_path):
    write_cifar(tmp_path / "raw")
    index = read_index(ensure_index(CIFAR_10, tmp_path / "raw", tmp_path / "index", folds=3, seed=0))
    assert index.image_paths("test")[0].endswith("test/1.png") and index.train_pixels is None
    assert index.metadata["channels"] == 3 and index.metadata["image_height"] == 8


def test_index_is_reused_and_rebuilt(tmp_path):
    write_digit_recognizer(tmp_path / "raw")
    directory = ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", tmp_path / "index", folds=3, seed=0)
    stamp = (directory / "index.json").stat().st_mtime_ns
    ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", directory, folds=3, seed=0)
    assert (directory / "index.json").stat().st_mtime_ns == stamp  # unchanged: not rebuilt
    first = json.loads((directory / "index.json").read_text())
    ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", directory, folds=4, seed=0)
    second = json.loads((directory / "index.json").read_text())
    assert second["folds"] == 4
    assert second["images_hash"] == first["images_hash"]  # re-folding keeps the features' key
    write_digit_recognizer(tmp_path / "raw", seed=1)
    third = json.loads((ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", directory, 4, 0) / "index.json").read_text())
    assert third["images_hash"] != first["images_hash"]


def test_bad_input_writes_no_index(tmp_path):
    write_digit_recognizer(tmp_path / "raw")
    (tmp_path / "raw" / "train.csv").write_text("label,pixel0\n1,2\n")
    with pytest.raises(CompetitionDataError, match="wrong pixel count"):
        ensure_index(DIGIT_RECOGNIZER, tmp_path / "raw", tmp_path / "index", folds=3, seed=0)
    assert not (tmp_path / "index").exists()


def test_a_grey_first_image_and_mixed_sizes_still_make_one_colour_batch_shape(tmp_path):
    """A grey first image used to make a colour competition one-channel, and a pixel member (no image size asked)
    crashed in tf.data batching images of different sizes: channels now come from every image, and images of other
    sizes are resized to the most common size."""
    from PIL import Image

    from tasks.pipelines import image_batches, split_source

    write_cifar(tmp_path / "raw")
    Image.new("L", (8, 8), 90).save(tmp_path / "raw" / "train" / "1.png")
    Image.new("RGB", (12, 10), (10, 20, 30)).save(tmp_path / "raw" / "train" / "2.png")
    index = read_index(ensure_index(CIFAR_10, tmp_path / "raw", tmp_path / "index", folds=3, seed=0))
    assert (index.metadata["channels"], index.metadata["image_height"], index.metadata["image_width"]) == (3, 8, 8)
    assert not index.same_size
    batches = list(image_batches(split_source(index, "train"), index.metadata["channels"], None, 16,
                                 same_size=index.same_size).as_numpy_iterator())
    assert [batch.shape for batch in batches] == [(16, 8, 8, 3), (14, 8, 8, 3)]
    assert np.allclose(batches[0][0], 90)  # the grey image, repeated into three channels


def test_multilabel_folds_spread_every_tag():
    """Tags stratified by each row's rarest tag: a tag on 9 of 300 rows lands 3 to a fold, not by chance."""
    rng = np.random.default_rng(0)
    tags = (rng.uniform(size=(300, 4)) < [0.6, 0.3, 0.1, 0.0]).astype(np.int8)
    tags[rng.choice(300, 9, replace=False), 3] = 1
    folds = assign_folds(tags, folds=3, seed=0)
    assert max(np.bincount(folds)) - min(np.bincount(folds)) <= 2
    assert [int(tags[folds == fold, 3].sum()) for fold in range(3)] == [3, 3, 3]


def test_ranking_folds_take_classes_seen_once():
    """Whale-like labels (most classes seen once) fold without error; the common classes stay stratified."""
    labels = np.concatenate([np.zeros(30, int), np.ones(30, int), np.arange(2, 42)])
    folds = assign_folds(labels, folds=3, seed=0, merge_rare=True)
    assert [int((labels[folds == fold] == 0).sum()) for fold in range(3)] == [10, 10, 10]
    with pytest.raises(CompetitionDataError, match="class index 2 has 1 training examples"):
        assign_folds(labels, folds=3, seed=0)


def test_multilabel_targets_are_stored_beside_the_index(tmp_path):
    import dataclasses

    import pandas as pd

    write_cifar(tmp_path / "raw")
    tags = ["animal", "vehicle", "wings"]
    frame = pd.read_csv(tmp_path / "raw" / "trainLabels.csv")
    frame["label"] = ["animal wings" if i % 3 == 0 else "vehicle" if i % 3 == 1 else "animal" for i in range(30)]
    frame.to_csv(tmp_path / "raw" / "trainLabels.csv", index=False)
    spec = dataclasses.replace(CIFAR_10, task="multilabel", class_names=tuple(tags), submission_form="tags",
                               metric="mean_f2")
    index = read_index(ensure_index(spec, tmp_path / "raw", tmp_path / "index", folds=3, seed=0))
    assert index.task == "multilabel" and index.targets().shape == (30, 3)
    assert index.targets()[:3].tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert (index.split("train")["label"] == -1).all() and index.metadata["class_counts"] == [20, 10, 10]
