import keras
import numpy as np
import pytest

from tasks.backbones import backbone_spec
from tasks.cnn import cnn_model, fit_cnn
from tasks.competitions import DIGIT_RECOGNIZER
from tasks.errors import ConfigError
from tasks.features import Extractor, FeatureConfig, cache_feature_set
from tasks.heads import fit_logistic, fit_mlp
from tasks.index import ensure_index, read_index
from tasks.members import MemberContext, TrainConfig
from tasks.metrics import score_probabilities
from tests.factories import fit_every_fold, tiny_backbone_file, write_separable_digits


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    raw = write_separable_digits(root / "raw", num_train=120, num_test=10)
    index = read_index(ensure_index(DIGIT_RECOGNIZER, raw, root / "index", folds=3, seed=0))
    model = tiny_backbone_file(root / "tiny.keras")
    extractor, config = Extractor(backbone_spec(f"file:{model}"), model, 28), FeatureConfig(image_size=28)
    directories = []
    for view in ("identity", "flip"):
        cache_feature_set(index, extractor, view, root / view, config)
        directories.append(root / view)
    return MemberContext(index, TrainConfig(epochs=40, batch_size=16, patience=8), feature_dirs=tuple(directories))


@pytest.mark.parametrize("fit", [fit_logistic, pytest.param(fit_mlp, marks=pytest.mark.slow)])  # mlp: ~40 s
def test_heads_learn_from_features(context, fit):
    result = fit_every_fold(context, fit(context))
    assert result.oof.shape == (120, 10) and result.test.shape == (10, 10)
    np.testing.assert_allclose(result.test.sum(axis=1), 1.0, rtol=1e-4)
    assert score_probabilities(context.targets, result.oof, "accuracy") > 0.8  # chance is 0.1


def test_head_without_backbone_is_refused(context):
    bare = MemberContext(context.index, context.train)
    with pytest.raises(ConfigError, match="needs a backbone"):
        fit_logistic(bare)


@pytest.mark.slow  # ~40 s: the default suite stays under ten minutes
def test_cnn_learns_and_augments_only_in_training(context):
    cnn_context = MemberContext(context.index, TrainConfig(epochs=20, batch_size=8, learning_rate=3e-3))
    result = fit_every_fold(cnn_context, fit_cnn(cnn_context))
    assert score_probabilities(context.targets, result.oof, "accuracy") > 0.8
    model = cnn_model((28, 28, 1), 10)
    images = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
    augmentation = model.get_layer("augmentation")
    np.testing.assert_array_equal(augmentation(images, training=False), images)  # inference: untouched
    assert np.abs(np.asarray(augmentation(images, training=True)) - images).max() > 1.0  # training: augmented
    flips = lambda layers: [layer for layer in layers if isinstance(layer, keras.layers.RandomFlip)]
    assert not flips(augmentation.layers)  # a mirrored digit is not a digit
    assert flips(cnn_model((28, 28, 3), 10).get_layer("augmentation").layers)  # a mirrored photo is a photo


def test_keras_members_emit_float32_logits_and_predict_probabilities():
    """Logits out (the loss takes them with from_logits=True), in float32 even under mixed precision;
    probabilities only at prediction time."""
    from tasks.members import predict_probabilities, softmax_model

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = cnn_model((28, 28, 1), 10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("logits").activation.__name__ == "linear"
    assert model.get_layer("logits").dtype_policy.compute_dtype == "float32" and model.output.dtype == "float32"
    images = np.random.default_rng(1).uniform(0, 255, (6, 28, 28, 1)).astype("float32")
    baseline = softmax_model((28, 28, 1), 10)
    logits = np.asarray(baseline(images))
    assert not np.allclose(logits.sum(axis=1), 1.0)
    probabilities = predict_probabilities(baseline, images)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), logits.argmax(axis=1))
