"""The from-scratch CNN's augmentation, as the tutorial shows it."""

import numpy as np
import pytest

from tasks.cnn import augment_images
from tasks.errors import ConfigError


def test_augmented_copies_keep_the_shape_and_differ_from_the_original_and_each_other():
    images = np.zeros((3, 16, 16, 1), np.uint8)
    images[:, 4:12, 6:10] = 255  # a bar: shifts, turns and zooms move it
    augmented = augment_images(images, copies=4, flip=False, seed=1)
    assert augmented.shape == (4, 3, 16, 16, 1) and augmented.dtype == np.uint8
    assert not np.array_equal(augmented[0], images) and not np.array_equal(augmented[0], augmented[1])
    np.testing.assert_array_equal(augmented, augment_images(images, copies=4, flip=False, seed=1))  # seeded


def test_at_least_one_copy():
    with pytest.raises(ConfigError, match="copies must be at least 1"):
        augment_images(np.zeros((1, 8, 8, 3), np.uint8), copies=0, flip=True)
