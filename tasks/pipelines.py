"""tf.data input pipelines from an index: decode -> resize -> (view) -> batch -> prefetch.

Images leave here as float32 RGB-or-grey in 0..255; every model does its own preprocessing inside.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

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
    raise ValueError(f"cannot turn {have}-channel images into {channels}-channel images")


def resize(image: tf.Tensor, image_size: int | None) -> tf.Tensor:
    """Cast to float32 in 0..255 and resize (bilinear, with antialiasing when shrinking)."""
    image = tf.cast(image, tf.float32)
    if image_size is None:
        return image
    return tf.image.resize(image, (image_size, image_size), antialias=True)


def apply_view(image: tf.Tensor, view: str) -> tf.Tensor:
    """A deterministic test-time view of a batch or an image."""
    if view == "identity":
        return image
    if view == "flip":
        return tf.image.flip_left_right(image)
    raise ValueError(f"unknown view {view!r}; known views are {VIEWS}")


def image_dataset(source: np.ndarray | list[str], channels: int, image_size: int | None,
                  view: str = "identity") -> tf.data.Dataset:
    """Unbatched images from a uint8 pixel array (N, H, W, C) or from a list of image file paths."""
    if isinstance(source, np.ndarray):
        dataset = tf.data.Dataset.from_tensor_slices(source)
        dataset = dataset.map(lambda image: match_channels(image, channels), num_parallel_calls=AUTOTUNE)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(source), dtype=tf.string))
        dataset = dataset.map(lambda path: decode_file(path, channels), num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(lambda image: resize(image, image_size), num_parallel_calls=AUTOTUNE)
    if view != "identity":
        dataset = dataset.map(lambda image: apply_view(image, view), num_parallel_calls=AUTOTUNE)
    return dataset


def batched(dataset: tf.data.Dataset, batch_size: int, labels: np.ndarray | None = None,
            shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Pair with labels, optionally shuffle, batch, and prefetch last."""
    if labels is not None:
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensor_slices(labels)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def split_source(index, split: str, positions: np.ndarray | None = None) -> np.ndarray | list[str]:
    """The images of one split of a LoadedIndex (optionally a subset of positions), as array or paths."""
    pixels = index.train_pixels if split == "train" else index.test_pixels
    if pixels is not None:
        return pixels if positions is None else pixels[positions]
    paths = index.image_paths(split)
    return paths if positions is None else [paths[position] for position in positions]
