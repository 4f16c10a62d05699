import numpy as np
import pytest

from tasks.backbones import (
    BACKBONES,
    WeightsUnavailableError,
    backbone_spec,
    build_extractor,
    feature_maps,
    find_weights,
    first_convolution,
    resolve_weights,
)
from tasks.errors import ConfigError
from tests.factories import tiny_backbone_file


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_with_its_declared_width(name):
    spec = BACKBONES[name]
    size = max(spec.min_size, 32)
    model = build_extractor(spec, weights=None, image_size=size)
    features = model(np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")).numpy()
    assert features.shape == (2, spec.feature_width)
    assert np.isfinite(features).all()
    assert not any(layer.trainable_weights for layer in model.layers)  # frozen


def test_batchnorm_stays_in_inference_mode():
    """Calling the extractor in training mode must not switch BatchNorm to batch statistics."""
    model = build_extractor(BACKBONES["mobilenetv3small"], weights=None, image_size=32)
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(images, training=True), model(images, training=False), rtol=1e-5, atol=1e-5)


def test_preprocessing_is_inside_the_model():
    model = build_extractor(BACKBONES["resnet50v2"], weights=None, image_size=32)
    assert model.layers[1].name == "preprocess"
    assert all(layer.name != "preprocess" for layer in build_extractor(BACKBONES["efficientnetb0"], None, 32).layers)


def test_bring_your_own_file_pools_a_feature_map(tmp_path):
    path = tiny_backbone_file(tmp_path / "mine.keras")
    spec = backbone_spec(f"file:{path}")
    model = build_extractor(spec, weights=path, image_size=40)
    assert model(np.zeros((3, 40, 40, 3), "float32")).shape == (3, 12)
    assert spec.label == "mine"


@pytest.mark.parametrize("name, message", [
    ("resnet51", r"unknown backbone 'resnet51'; known backbones are \[.*'vgg16'"),
    ("file:model.h5", r"expected file:PATH\.keras"),
])
def test_bad_backbone_names(name, message):
    with pytest.raises(ConfigError, match=message):
        backbone_spec(name)


def test_too_small_input():
    with pytest.raises(ConfigError, match="image size 40 is below its minimum 75"):
        build_extractor(BACKBONES["inceptionv3"], None, 40)


def test_weights_found_in_nested_folders(tmp_path):
    spec = BACKBONES["efficientnetb0"]
    target = tmp_path / "kaggle" / "input" / "keras-weights" / spec.weights_file
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    assert find_weights(spec, [tmp_path / "empty", tmp_path / "kaggle" / "input"]) == target


def test_missing_weights_name_the_file_and_where(tmp_path):
    spec = BACKBONES["densenet121"]
    with pytest.raises(WeightsUnavailableError, match=rf"Place {spec.weights_file} in one of: {tmp_path}"):
        resolve_weights(spec, [tmp_path], allow_download=False)


def test_first_convolution_and_feature_maps_look_inside_the_backbone(tmp_path):
    """The tutorial's look inside: the first kernel, and what the convolutions output for one (grey) image,
    preprocessing included (VGG16's preprocess layer runs before its base)."""
    extractor = build_extractor(backbone_spec(f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}"), None, 16)
    assert first_convolution(extractor).shape == (3, 3, 3, 8)
    image = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
    maps = feature_maps(extractor, image, count=3)  # the tiny backbone has two convolutions: both, once each
    assert [activations.shape for _, activations in maps] == [(7, 7, 8), (5, 5, 12)]  # (Keras numbers the names)
    vgg = build_extractor(BACKBONES["vgg16"], weights=None, image_size=32)
    names = [name for name, _ in feature_maps(vgg, image, count=3)]
    assert names == ["block1_conv1", "block3_conv3", "block5_conv3"]
    assert all(np.isfinite(activations).all() for _, activations in feature_maps(vgg, image, count=3))


def test_a_model_without_convolutions_has_nothing_to_show(tmp_path):
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))).save(
        tmp_path / "pool.keras")
    extractor = build_extractor(backbone_spec(f"file:{tmp_path / 'pool.keras'}"), None, 16)
    with pytest.raises(ConfigError, match="no Conv2D layer"):
        first_convolution(extractor)
    with pytest.raises(ConfigError, match="no backbone with Conv2D layers"):
        feature_maps(extractor, np.zeros((8, 8, 3), np.uint8))
