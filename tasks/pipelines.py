"""tf.data input pipelines from an index: decode -> resize -> view -> batch -> prefetch.

Images leave here as float32 RGB-or-grey in 0..255; every model does its own preprocessing inside.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tasks.errors import CompetitionDataError, ConfigError

AUTOTUNE = tf.data.AUTOTUNE
VIEWS = ("identity", "flip")


def decode_file(path: tf.Tensor, channels: int) -> tf.Tensor:
    """Read and decode one image file (PNG, JPEG, BMP, GIF) to uint8 with `channels` channels."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def match_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Grey to RGB by repetition (backbones want three channels), or RGB to grey."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    raise CompetitionDataError(f"cannot turn {have}-channel images into {channels}-channel images")


def resize(images: tf.Tensor, image_size: int | None) -> tf.Tensor:
    """Cast an image or a batch to float32 in 0..255 and resize it, antialiased only when shrinking.

    (Antialiasing runs a slower kernel and changes nothing when enlarging, the common case here.)
    """
    images = tf.cast(images, tf.float32)
    if image_size is None:
        return images
    size = (image_size, image_size)
    shape = tf.shape(images)
    shrinking = tf.logical_or(shape[-3] > image_size, shape[-2] > image_size)
    resized = tf.cond(shrinking, lambda: tf.image.resize(images, size, antialias=True),
                      lambda: tf.image.resize(images, size))
    resized.set_shape([*images.shape[:-3], image_size, image_size, images.shape[-1]])
    return resized


def apply_view(image: tf.Tensor, view: str) -> tf.Tensor:
    """A deterministic test-time view of a batch or an image."""
    if view == "identity":
        return image
    if view == "flip":
        return tf.image.flip_left_right(image)
    raise ConfigError(f"unknown view {view!r}; known views are {VIEWS}")


def decoded_images(source: np.ndarray | list[str], channels: int) -> tf.data.Dataset:
    """Unbatched uint8 images with `channels` channels, from a pixel array (N, H, W, C) or image files."""
    if isinstance(source, np.ndarray):
        dataset = tf.data.Dataset.from_tensor_slices(source)
        return dataset.map(lambda image: match_channels(image, channels), num_parallel_calls=AUTOTUNE)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(source), dtype=tf.string))
    return dataset.map(lambda path: decode_file(path, channels), num_parallel_calls=AUTOTUNE)


def image_batches(source: np.ndarray | list[str], channels: int, image_size: int | None, batch_size: int,
                  view: str = "identity", labels: np.ndarray | None = None, shuffle_seed: int | None = None,
                  same_size: bool = False) -> tf.data.Dataset:
    """Batches of float32 images in 0..255 (with labels when given): decode -> resize -> view -> batch -> prefetch.

    Images that all share one size (pixel arrays always do; `same_size` says so for files) are batched
    before resizing instead: one resize per batch costs far less than one per image.
    """
    apply_view(tf.zeros((1, 1, 1)), view)  # fail early on an unknown view
    image_size = _batchable_size(source, image_size, same_size)
    transform = lambda images: apply_view(resize(images, image_size), view)
    dataset = decoded_images(source, channels)
    if labels is not None:
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(labels)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    mapped = (lambda images, targets: (transform(images), targets)) if labels is not None else transform
    if same_size or isinstance(source, np.ndarray):
        dataset = dataset.batch(batch_size, num_parallel_calls=AUTOTUNE).map(mapped, num_parallel_calls=AUTOTUNE)
    else:
        dataset = dataset.map(mapped, num_parallel_calls=AUTOTUNE).batch(batch_size, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def uint8_batches(source: np.ndarray | list[str], channels: int, image_size: int | None, batch_size: int,
                  same_size: bool = False) -> tf.data.Dataset:
    """Batches of uint8 images for a model that resizes inside its own traced function: at their native
    size when all share one (batched as decoded), else each resized to `image_size` first."""
    dataset = decoded_images(source, channels)
    image_size = _batchable_size(source, image_size, same_size)
    if not (same_size or isinstance(source, np.ndarray)):
        to_uint8 = lambda image: tf.cast(tf.round(tf.clip_by_value(resize(image, image_size), 0, 255)), tf.uint8)
        dataset = dataset.map(to_uint8, num_parallel_calls=AUTOTUNE)
    return dataset.batch(batch_size)


def split_source(index, split: str, positions: np.ndarray | None = None) -> np.ndarray | list[str]:
    """The images of one split of a LoadedIndex (optionally a subset of positions), as array or paths."""
    pixels = index.train_pixels if split == "train" else index.test_pixels
    if pixels is not None:
        return pixels if positions is None else pixels[positions]
    paths = index.image_paths(split)
    size = max(index.metadata["image_height"], index.metadata["image_width"])  # the most common size's
    return ImageFiles(paths if positions is None else [paths[position] for position in positions], size)


class ImageFiles(list):
    """Image paths, with the size that images of mixed sizes are resized to when the caller asks for none (a pixel
    model needs one input shape; tf.data cannot batch images of different shapes)."""

    def __init__(self, paths: list[str], common_size: int):
        super().__init__(paths)
        self.common_size = common_size


def _batchable_size(source, image_size: int | None, same_size: bool) -> int | None:
    """The size to resize to: the one asked for, else, for files of mixed sizes, their most common size."""
    if image_size is not None or same_size or isinstance(source, np.ndarray):
        return image_size
    return getattr(source, "common_size", None)  # a plain list of paths: batched as they come
