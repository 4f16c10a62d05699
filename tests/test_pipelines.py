import numpy as np
import pytest

from tasks.pipelines import apply_view, batched, image_dataset
from tests.factories import write_cifar


def test_pixel_source_to_rgb_batches():
    pixels = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4, 1)
    dataset = batched(image_dataset(pixels, channels=3, image_size=8), batch_size=2, labels=np.arange(5))
    batches = list(dataset.as_numpy_iterator())
    images, labels = batches[0]
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32 and labels.tolist() == [0, 1]
    assert len(batches) == 3
    assert np.array_equal(images[..., 0], images[..., 2])  # grey repeated into RGB


def test_file_source_keeps_values_in_0_255(tmp_path):
    write_cifar(tmp_path, num_train=3, num_test=1)
    paths = [str(tmp_path / "train" / f"{i}.png") for i in (1, 2, 3)]
    images = next(batched(image_dataset(paths, channels=3, image_size=None), 3).as_numpy_iterator())
    assert images.shape == (3, 8, 8, 3) and images.max() <= 255 and images.max() > 1


def test_flip_view():
    image = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    flipped = apply_view(image, "flip").numpy()
    assert np.array_equal(flipped[0, :, 0], image[0, :, 1])
    with pytest.raises(ValueError, match="unknown view 'rotate'"):
        apply_view(image, "rotate")
