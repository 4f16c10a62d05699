"""Backbones from KerasHub presets (`--backbone hub:PRESET`): DINOv2, CLIP/SigLIP, ViT, EfficientNet, ResNet...
as frozen feature extractors, their own preprocessing (the preset's image converter) inside the model.

A preset is a KerasHub preset name (`hub:dinov2_small`), a Kaggle Models handle
(`hub:kaggle://keras/dinov2/keras/dinov2_small/1`) or a local preset folder (`hub:/path/to/preset`, holding
config.json and model.weights.h5, as `save_to_preset` writes). Its weights are never silently random: they are
looked for in the local folder, then where Kaggle mounts attached models (`/kaggle/input/models/<owner>/<model>/
keras/<variation>/<version>`) and in kagglehub's cache, then downloaded when online; offline, one error names
where to put them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tasks.errors import ConfigError, WeightsUnavailableError

HUB_PREFIX = "hub:"
KAGGLE_SCHEME = "kaggle://"
PRESET_FILES = ("config.json", "model.weights.h5")


def is_preset_folder(path: Path) -> bool:
    return all((Path(path) / name).is_file() for name in PRESET_FILES)


def kaggle_handle(preset: str) -> str | None:
    """The Kaggle Models handle of a preset (`keras/dinov2/keras/dinov2_small/1`), None for a local folder."""
    if preset.startswith(KAGGLE_SCHEME):
        return preset[len(KAGGLE_SCHEME):].strip("/")
    if "/" in preset or preset.startswith("."):
        return None
    import keras_hub

    known = keras_hub.models.Backbone.presets
    if preset not in known:
        raise ConfigError(f"unknown KerasHub preset {preset!r}: give a preset name (e.g. dinov2_small, "
                          "clip_vit_base_patch16, efficientnet_b0_ra_imagenet), a kaggle:// handle or a preset folder")
    return known[preset]["kaggle_handle"][len(KAGGLE_SCHEME):].strip("/")


def preset_input_size(preset: str) -> int:
    """The image size a preset's backbone takes: from a local folder's config, else 224 (the presets' usual)."""
    config = Path(preset) / "config.json"
    if config.is_file():
        shape = json.loads(config.read_text()).get("config", {}).get("image_shape")
        if shape and shape[0]:
            return int(shape[0])
    return 224


def mounted_folders(handle: str, search_dirs: list[Path]) -> list[Path]:
    """Where an attached or cached copy of a Kaggle model would be: Kaggle's notebook mounts and kagglehub's cache."""
    owner, model, framework, variation, version = (handle.split("/") + [""] * 5)[:5]
    tail = Path(model, framework, variation, version)
    cache = Path(os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub"))
    roots = [*search_dirs, cache]
    return [folder for root in roots for folder in (Path(root) / "models" / owner / tail, Path(root) / owner / tail,
                                                     Path(root) / tail)]


def resolve_preset(preset: str, search_dirs: list[Path], allow_download: bool = True) -> Path:
    """The local folder of a preset's files (config and weights); downloaded when not found and online."""
    if is_preset_folder(Path(preset)):
        return Path(preset)
    handle = kaggle_handle(preset)
    if handle is None:
        raise WeightsUnavailableError(f"backbone hub:{preset}: {preset} is not a preset folder (it needs "
                                      f"{' and '.join(PRESET_FILES)})")
    found = next((folder for folder in mounted_folders(handle, search_dirs) if is_preset_folder(folder)), None)
    if found is None and allow_download:
        found = _download(handle)
    if found is None:
        places = ", ".join(str(folder) for folder in mounted_folders(handle, search_dirs)[:4])
        raise WeightsUnavailableError(
            f"backbone hub:{preset}: its weights are not here and cannot be downloaded (offline?). Put the preset's "
            f"files ({', '.join(PRESET_FILES)}) in a folder and give --backbone hub:FOLDER, or place them under one "
            f"of: {places}; in a Kaggle notebook, attach the model {handle} (kernel push does, as model_sources)")
    return found


def _download(handle: str) -> Path | None:
    try:
        import kagglehub

        return Path(kagglehub.model_download(handle))
    except Exception:  # offline, or refused: whatever its type, there is no copy
        return None


def preset_hash(folder: Path) -> str:
    """sha256 over a preset's config and weights: part of the feature cache's key."""
    digest = hashlib.sha256()
    for name in PRESET_FILES:
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


def build_hub_extractor(folder: Path, size: int):
    """Images (size x size, RGB 0..255) -> the preset's image converter (resize, scale, normalise) -> its backbone
    (the vision tower of a two-tower model), frozen and in inference mode -> a feature vector: the class token of a
    transformer, the mean of a CNN's feature map."""
    import keras
    import keras_hub
    from keras import layers

    backbone = keras_hub.models.Backbone.from_preset(str(folder), load_weights=True)
    tower = getattr(backbone, "vision_encoder", None) or backbone
    tower.trainable = False
    inputs = keras.Input(shape=(size, size, 3), name="pixels")
    images = inputs
    if (Path(folder) / "image_converter.json").is_file():
        images = keras_hub.layers.ImageConverter.from_preset(str(folder))(images)
    features = tower(images, training=False)
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name="pool")(features)
    elif len(features.shape) == 3:
        features = layers.Lambda(lambda sequence: sequence[:, 0], name="class_token")(features)
    return keras.Model(inputs, features, name="hub_features")


BUNDLED = "presets"  # where the kit bundle carries local preset folders (a kernel has no other way to them)


def local_preset(backbone: str) -> Path | None:
    """The folder of a `hub:FOLDER` backbone, None for any other backbone."""
    if backbone.startswith(HUB_PREFIX) and is_preset_folder(Path(backbone[len(HUB_PREFIX):])):
        return Path(backbone[len(HUB_PREFIX):])
    return None


def run_presets(backbones: tuple[str, ...], members: tuple[str, ...]) -> list[str]:
    """The hub backbones a run names, in its backbones and in its members' names (`KIND@hub:...#SEED`)."""
    named = [*backbones, *(member.split("@", 1)[1].rsplit("#", 1)[0] for member in members if "@" in member)]
    return [name for name in dict.fromkeys(named) if name.startswith(HUB_PREFIX)]


def model_sources(backbones: tuple[str, ...], members: tuple[str, ...]) -> tuple[str, ...]:
    """The Kaggle models a notebook needs attached for the run's hub backbones (`owner/model/keras/variation/N`)."""
    handles = [kaggle_handle(name[len(HUB_PREFIX):]) for name in run_presets(backbones, members)
               if local_preset(name) is None]
    return tuple(handle for handle in handles if handle)


def bundled_name(text: str) -> str:
    """A backbone or member name as the kit bundle carries it: a local preset folder moves to `presets/<name>`."""
    for name in run_presets((text,), (text,)):
        folder = local_preset(name)
        if folder is not None:
            text = text.replace(name, f"{HUB_PREFIX}{BUNDLED}/{folder.name}")
    return text
