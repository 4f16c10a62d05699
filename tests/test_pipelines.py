import numpy as np
import pytest

from tasks.errors import ConfigError
from tasks.pipelines import apply_view, image_batches, resize
from tests.factories import write_cifar


def test_pixel_source_to_rgb_batches():
    pixels = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4, 1)
    dataset = image_batches(pixels, channels=3, image_size=8, batch_size=2, labels=np.arange(5))
    batches = list(dataset.as_numpy_iterator())
    images, labels = batches[0]
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32 and labels.tolist() == [0, 1]
    assert len(batches) == 3
    assert np.array_equal(images[..., 0], images[..., 2])  # grey repeated into RGB


def test_file_source_keeps_values_in_0_255(tmp_path):
    write_cifar(tmp_path, num_train=3, num_test=1)
    paths = [str(tmp_path / "train" / f"{i}.png") for i in (1, 2, 3)]
    images = next(image_batches(paths, channels=3, image_size=None, batch_size=3).as_numpy_iterator())
    assert images.shape == (3, 8, 8, 3) and images.max() <= 255 and images.max() > 1


def test_flip_view():
    image = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    flipped = apply_view(image, "flip").numpy()
    assert np.array_equal(flipped[0, :, 0], image[0, :, 1])
    with pytest.raises(ConfigError, match="unknown view 'rotate'"):
        apply_view(image, "rotate")


@pytest.mark.parametrize("same_size", [False, True])
def test_files_batched_before_or_after_resizing_agree(tmp_path, same_size):
    write_cifar(tmp_path, num_train=5, num_test=1)
    paths = [str(tmp_path / "train" / f"{i}.png") for i in range(1, 6)]
    reference = np.concatenate(list(image_batches(paths, 3, 20, 2, view="flip").as_numpy_iterator()))
    batched_first = np.concatenate(list(image_batches(paths, 3, 20, 2, view="flip", same_size=same_size)
                                        .as_numpy_iterator()))
    np.testing.assert_allclose(batched_first, reference, atol=1e-3)
    assert reference.shape == (5, 20, 20, 3)


def test_antialias_only_when_shrinking():
    import tensorflow as tf

    image = np.random.default_rng(0).uniform(0, 255, (1, 9, 9, 1)).astype(np.float32)
    np.testing.assert_allclose(resize(image, 4), tf.image.resize(image, (4, 4), antialias=True), atol=1e-4)
    np.testing.assert_allclose(resize(image, 20), tf.image.resize(image, (20, 20)), atol=1e-4)
    assert not np.allclose(tf.image.resize(image, (4, 4), antialias=True), tf.image.resize(image, (4, 4)))


def test_unknown_view_fails_before_reading():
    with pytest.raises(ConfigError, match="unknown view 'rotate'"):
        image_batches(np.zeros((2, 4, 4, 1), np.uint8), 1, None, 2, view="rotate")
