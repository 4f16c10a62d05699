"""The backbone registry: small frozen specs of ImageNet feature extractors, and building them frozen.

Every built extractor takes RGB in 0..255 (float) of its input size and returns a pooled feature
vector; each backbone's own preprocessing sits inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.files import sha256_file
from tasks.hub import (
    HUB_PREFIX,
    build_hub_extractor,
    is_preset_folder,
    kaggle_handle,
    preset_hash,
    preset_input_size,
    resolve_preset,
)

FILE_PREFIX = "file:"


@dataclass(frozen=True)
class BackboneSpec:
    """One frozen feature extractor.

    `preprocessing` names the keras.applications module whose `preprocess_input` the model applies
    (empty where the Keras model normalises inside, as EfficientNet, MobileNetV3 and ConvNeXt do).
    `weights_file` is Keras' file name for the ImageNet weights without the top, looked up locally.
    """

    name: str
    builder: str
    input_size: int
    feature_width: int
    preprocessing: str
    weights_file: str
    min_size: int = 32

    @property
    def label(self) -> str:
        """A short name for progress bars and folders."""
        if self.builder == "hub":
            return "hub-" + Path(self.weights_file.rstrip("/")).name
        return Path(self.weights_file).stem if self.builder == "file" else self.name

    @property
    def own_weights(self) -> bool:
        """Its weights come with it (a model file, a preset): never random, never from Keras' ImageNet download."""
        return self.builder in ("file", "hub")


def _spec(name, builder, size, width, preprocessing, weights_file, min_size=32) -> BackboneSpec:
    return BackboneSpec(name, builder, size, width, preprocessing, weights_file, min_size)


_DIM = "_weights_tf_dim_ordering_tf_kernels_notop.h5"
BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in (
    _spec("vgg16", "VGG16", 224, 512, "vgg16", "vgg16" + _DIM),
    _spec("resnet50", "ResNet50", 224, 2048, "resnet", "resnet50" + _DIM),
    _spec("resnet50v2", "ResNet50V2", 224, 2048, "resnet_v2", "resnet50v2" + _DIM),
    _spec("mobilenetv2", "MobileNetV2", 224, 1280, "mobilenet_v2",
          "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    _spec("mobilenetv3small", "MobileNetV3Small", 224, 576, "",
          "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    _spec("mobilenetv3large", "MobileNetV3Large", 224, 960, "",
          "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
    _spec("efficientnetb0", "EfficientNetB0", 224, 1280, "", "efficientnetb0_notop.h5"),
    _spec("efficientnetb1", "EfficientNetB1", 240, 1280, "", "efficientnetb1_notop.h5"),
    _spec("efficientnetb2", "EfficientNetB2", 260, 1408, "", "efficientnetb2_notop.h5"),
    _spec("efficientnetb3", "EfficientNetB3", 300, 1536, "", "efficientnetb3_notop.h5"),
    _spec("efficientnetv2b0", "EfficientNetV2B0", 224, 1280, "", "efficientnetv2-b0_notop.h5"),
    _spec("efficientnetv2b1", "EfficientNetV2B1", 240, 1280, "", "efficientnetv2-b1_notop.h5"),
    _spec("efficientnetv2b2", "EfficientNetV2B2", 260, 1408, "", "efficientnetv2-b2_notop.h5"),
    _spec("efficientnetv2s", "EfficientNetV2S", 384, 1280, "", "efficientnetv2-s_notop.h5"),
    _spec("densenet121", "DenseNet121", 224, 1024, "densenet", "densenet121" + _DIM),
    _spec("inceptionv3", "InceptionV3", 299, 2048, "inception_v3", "inception_v3" + _DIM, min_size=75),
    _spec("xception", "Xception", 299, 2048, "xception", "xception" + _DIM, min_size=71),
    _spec("convnexttiny", "ConvNeXtTiny", 224, 768, "", "convnext_tiny_notop.h5"),
)}


def backbone_spec(name: str) -> BackboneSpec:
    """A registered spec, one for a bring-your-own `file:PATH.keras` model, or a KerasHub preset (`hub:PRESET`)."""
    if name.startswith(HUB_PREFIX):
        preset = name[len(HUB_PREFIX):]
        if not is_preset_folder(Path(preset)):
            kaggle_handle(preset)  # an unknown preset name is an error now, before any work
        return BackboneSpec(name, "hub", preset_input_size(preset), 0, "", preset, min_size=8)
    if name.startswith(FILE_PREFIX):
        path = Path(name[len(FILE_PREFIX):])
        if path.suffix != ".keras":
            raise ConfigError(f"backbone {name!r}: expected file:PATH.keras (a Keras 3 model file)")
        return BackboneSpec(name, "file", 224, 0, "", str(path), min_size=8)
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known backbones are {sorted(BACKBONES)}, "
                          "file:PATH.keras or hub:PRESET")
    return BACKBONES[name]


def find_weights(spec: BackboneSpec, search_dirs: list[Path]) -> Path | None:
    """The first local copy of the spec's weights file: searched in each directory and below it."""
    if spec.builder == "file":
        path = Path(spec.weights_file)
        return path if path.is_file() else None
    for directory in search_dirs:
        direct = Path(directory) / spec.weights_file
        if direct.is_file():
            return direct
        if Path(directory).is_dir():
            found = next(iter(sorted(Path(directory).rglob(spec.weights_file))), None)
            if found is not None:
                return found
    return None


def weights_hash(path: Path | None) -> str:
    """sha256 of a weights file, or of a preset folder's config and weights ('none' for random weights): part of
    the feature cache key."""
    return preset_hash(path) if path is not None and Path(path).is_dir() else sha256_file(path)


def missing_weights_message(spec: BackboneSpec, search_dirs: list[Path]) -> str:
    where = ", ".join(str(directory) for directory in search_dirs) or "(no directories)"
    if spec.builder == "file":
        return f"backbone {spec.name}: model file {spec.weights_file} not found"
    return (f"backbone {spec.name}: no ImageNet weights here and no network to download them. Place "
            f"{spec.weights_file} in one of: {where} (Keras' cache is ~/.keras/models; inside Kaggle, "
            "attach a dataset holding it)")


def build_extractor(spec: BackboneSpec, weights: Path | None, image_size: int | None = None) -> keras.Model:
    """The frozen extractor: RGB 0..255 in, pooled features out, BatchNorm in inference mode."""
    size = image_size or spec.input_size
    if size < spec.min_size:
        raise ConfigError(f"backbone {spec.name}: image size {size} is below its minimum {spec.min_size}")
    if spec.builder == "hub":
        if weights is None:
            raise WeightsUnavailableError(f"backbone {spec.name}: a preset is never built with random weights")
        return build_hub_extractor(Path(weights), size)
    inputs = keras.Input(shape=(size, size, 3), name="pixels")
    if spec.builder == "file":
        from tasks.devices import in_policy
        from tasks.saved_models import load_model

        base = in_policy(load_model(spec.weights_file))  # its Keras and TensorFlow versions checked first
    else:
        base = getattr(keras.applications, spec.builder)(
            include_top=False, weights=None if weights is None else str(weights), input_shape=(size, size, 3))
    base.trainable = False
    features = inputs
    if spec.preprocessing:
        module = getattr(keras.applications, spec.preprocessing)
        features = layers.Lambda(module.preprocess_input, name="preprocess")(features)
    # training=False keeps BatchNorm on its ImageNet statistics even if a caller fine-tunes around it.
    features = base(features, training=False)
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, features, name=f"{spec.label}_features")


def download_weights(spec: BackboneSpec) -> None:
    """Let Keras fetch the ImageNet weights into its cache (needs the network)."""
    try:
        size = (spec.input_size, spec.input_size, 3)
        getattr(keras.applications, spec.builder)(include_top=False, weights="imagenet", input_shape=size)
    except Exception as error:  # offline: a URL or socket error, whatever its type
        raise WeightsUnavailableError(f"{spec.name}: download failed ({type(error).__name__})") from None


def resolve_weights(spec: BackboneSpec, search_dirs: list[Path], allow_download: bool = True) -> Path:
    """Local weights file (a preset's folder) for a pretrained backbone; never silently random weights."""
    if spec.builder == "hub":
        return resolve_preset(spec.weights_file, search_dirs, allow_download)
    found = find_weights(spec, search_dirs)
    if found is None and allow_download and spec.builder != "file":
        try:
            download_weights(spec)
        except WeightsUnavailableError:
            pass
        found = find_weights(spec, search_dirs)
    if found is None:
        raise WeightsUnavailableError(missing_weights_message(spec, search_dirs))
    return found


def weighted_layers(model: keras.Model) -> list[layers.Layer]:
    """The layers that hold weights, nested models opened up, in the order they appear (input to output)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(weighted_layers(layer))
        elif layer.weights:
            found.append(layer)
    return found


def first_convolution(extractor: keras.Model) -> np.ndarray:
    """The kernel of the backbone's first convolution, (height, width, input channels, filters): the patterns
    every later layer is built from."""
    for layer in weighted_layers(extractor):
        if isinstance(layer, layers.Conv2D):
            return np.asarray(layer.kernel)
    raise ConfigError(f"{extractor.name}: no Conv2D layer to show")


def feature_maps(extractor: keras.Model, image: np.ndarray, count: int = 3) -> list[tuple[str, np.ndarray]]:
    """What `count` convolutions, from the first to the last, output for one image (H, W, C in 0..255, grey
    or RGB): [(layer name, (height, width, channels))], in inference mode like the extraction itself."""
    position, base = next(((position, layer) for position, layer in enumerate(extractor.layers)
                           if isinstance(layer, keras.Model)), (None, None))
    convolutions = [layer for layer in (base.layers if base is not None else []) if isinstance(layer, layers.Conv2D)]
    if not convolutions:
        raise ConfigError(f"{extractor.name}: no backbone with Conv2D layers inside")
    picked = [convolutions[round(step)] for step in np.linspace(0, len(convolutions) - 1, max(1, count))]
    picked = list(dict.fromkeys(picked))
    probe = keras.Model(base.inputs, [layer.output for layer in picked])
    image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    height, width = extractor.input_shape[1:3]
    images = keras.ops.image.resize(np.asarray(image, "float32")[None], (height, width))
    for layer in extractor.layers[1:position]:  # what runs before the backbone: its preprocessing, if any
        images = layer(images)
    outputs = probe(images, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [(layer.name, np.asarray(output)[0]) for layer, output in zip(picked, outputs)]
