"""GPU settings exercised on a CPU: the plan from the GPUs found, the GPU branch with a simulated GPU, mixed
precision against float32, a one-device strategy, and MirroredStrategy over two logical CPU devices."""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from tasks.backbones import backbone_spec, build_extractor
from tasks.competitions import DIGIT_RECOGNIZER
from tasks.config import DeviceConfig, FeatureConfig
from tasks.devices import DevicePlan, device_plan, device_scope, extraction_jit, resolve_device_plan
from tasks.errors import ConfigError
from tasks.features import Extractor, cache_feature_set, feature_directory, load_features
from tasks.index import ensure_index, read_index
from tests.factories import tiny_backbone_file, write_digit_recognizer

ROOT = Path(__file__).resolve().parents[1]
CPU, ONE_GPU = DevicePlan(0, False, False, "default"), DevicePlan(1, True, True, "default")


def test_auto_turns_every_lever_on_with_a_gpu_and_off_without():
    assert device_plan(DeviceConfig(), 0) == CPU
    assert device_plan(DeviceConfig(), 1) == ONE_GPU
    assert device_plan(DeviceConfig(), 4) == DevicePlan(4, True, False, "mirrored")  # no XLA with tf.distribute
    # Extraction's input is prefetched to the one GPU; several: the strategy splits each batch itself.
    assert (CPU.input_device, ONE_GPU.input_device, device_plan(DeviceConfig(), 4).input_device) == (
        None, "/GPU:0", None)
    assert device_plan(DeviceConfig(multi_gpu="off"), 4) == DevicePlan(4, True, True, "default")
    forced = DeviceConfig(mixed_precision="on", jit_compile="on", multi_gpu="on")
    # Several replicas need several GPUs; XLA forced on compiles the training steps too.
    assert device_plan(forced, 0) == DevicePlan(0, True, True, "default", training_jit=True)
    assert device_plan(DeviceConfig(mixed_precision="off", jit_compile="off"), 1) == DevicePlan(
        1, False, False, "default", training_jit=False)


def test_a_bad_setting_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="device.jit_compile must be 'auto', 'on' or 'off', got 'yes'"):
        DeviceConfig(jit_compile="yes")


def test_the_gpu_branch_is_taken_when_a_gpu_is_visible(monkeypatch):
    import tensorflow as tf

    real = tf.config.list_physical_devices
    fake_gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [fake_gpu] if kind == "GPU" else real(kind))
    plan = resolve_device_plan(DeviceConfig())
    assert plan == ONE_GPU and plan.policy == "mixed_float16" and plan.input_device == "/GPU:0"
    assert extraction_jit("auto") is True and plan.training_jit == "auto"  # Keras decides, model by model
    assert resolve_device_plan(DeviceConfig(jit_compile="off")).training_jit is False
    monkeypatch.setattr(tf.config, "list_physical_devices", real)
    # Back on this machine's own devices, whatever they are: the plan follows the GPUs TensorFlow finds.
    gpus = len(real("GPU"))
    assert resolve_device_plan(DeviceConfig()) == device_plan(DeviceConfig(), gpus)
    assert extraction_jit("auto") is (gpus == 1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    write_digit_recognizer(root / "raw", num_train=24, num_test=8)
    index_dir = ensure_index(DIGIT_RECOGNIZER, root / "raw", root / "index", folds=2, seed=0)
    return root, read_index(index_dir), tiny_backbone_file(root / "tiny.keras")


def test_mixed_precision_features_match_float32_within_tolerance_and_are_cached_apart(tiny, tmp_path):
    root, index, model_path = tiny
    spec, config = backbone_spec(f"file:{model_path}"), FeatureConfig(batch_size=8, shard_size=16, image_size=32)
    features = {}
    for plan in (CPU, DevicePlan(0, True, True, "default")):  # float32; mixed_float16 with XLA, forced on a CPU
        with device_scope(plan):
            extractor = Extractor(spec, model_path, 32, plan.jit_compile)
            directory = feature_directory(tmp_path, index, spec, model_path, "identity", config, plan.policy)
            cache_feature_set(index, extractor, "identity", directory, config)
            base = next(layer for layer in extractor.model.layers if isinstance(layer, keras.Model))
            assert {layer.dtype_policy.name for layer in base.layers
                    if not isinstance(layer, keras.layers.InputLayer)} == {plan.policy}
        features[plan.policy] = (directory, load_features(directory)[0])
        assert keras.config.dtype_policy().name == "float32"  # the scope restores the global policy
    (plain_dir, plain), (mixed_dir, mixed) = features["float32"], features["mixed_float16"]
    assert plain_dir != mixed_dir  # a float32 run never reuses features computed in float16
    np.testing.assert_allclose(mixed, plain, rtol=2e-2, atol=2e-2)
    assert not np.array_equal(mixed, plain)  # really computed in float16


def test_images_streamed_to_a_device_give_the_features_of_chunks_decoded_first(tiny, tmp_path):
    """The GPU branch's input path (tf.data prefetching onto the device, here the CPU) against the CPU's."""
    root, index, model_path = tiny
    spec, config = backbone_spec(f"file:{model_path}"), FeatureConfig(batch_size=8, shard_size=16, image_size=32)
    extractor = Extractor(spec, model_path, 32)
    for name, device in (("chunks", None), ("streamed", "/CPU:0")):
        cache_feature_set(index, extractor, "identity", tmp_path / name, config, input_device=device)
    np.testing.assert_array_equal(load_features(tmp_path / "chunks")[0], load_features(tmp_path / "streamed")[0])


def test_a_loaded_backbone_keeps_its_weights_under_mixed_precision(tiny):
    _, _, model_path = tiny
    spec = backbone_spec(f"file:{model_path}")
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    expected = build_extractor(spec, model_path, 32)(images).numpy()
    with device_scope(DevicePlan(0, True, False, "default")):
        mixed = build_extractor(spec, model_path, 32)
    assert mixed(images).dtype == "float16"
    np.testing.assert_allclose(np.asarray(mixed(images), np.float32), expected, rtol=2e-2, atol=2e-2)


def test_training_under_a_one_device_strategy():
    import tensorflow as tf

    from tasks.config import TrainConfig
    from tasks.members import predict_probabilities, softmax_model, train_keras_model

    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    images = (rng.uniform(0, 60, (64, 8, 8, 1)) + 150 * labels[:, None, None, None]).astype(np.uint8)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = softmax_model((8, 8, 1), 2)
        history = train_keras_model(model, (images, labels), (images, labels),
                                    TrainConfig(epochs=10, batch_size=16, learning_rate=0.05))
    assert history["val_accuracy"][-1] > 0.9
    assert predict_probabilities(model, images).argmax(axis=1).tolist() == labels.tolist()


MIRRORED = """
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tasks.backbones import backbone_spec
from tasks.config import TrainConfig
from tasks.features import Extractor, extract_features
from tasks.members import softmax_model, train_keras_model

spec, path = backbone_spec("file:" + sys.argv[1]), sys.argv[1]
images = [tf.constant(np.random.default_rng(n).integers(0, 255, (size, 20, 20, 3)), tf.uint8)
          for n, size in enumerate((8, 8, 5))]  # the last batch is uneven: the replicas get 3 and 2
single = extract_features(Extractor(spec, path, 32).forward("identity"), images)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    extractor = Extractor(spec, path, 32)
    mirrored = extract_features(extractor.forward("identity"), images)
    np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-5)  # same rows, same order
    labels = np.arange(64) % 2
    pixels = (np.random.default_rng(0).uniform(0, 60, (64, 8, 8, 1)) + 150 * labels[:, None, None, None])
    model = softmax_model((8, 8, 1), 2)
    history = train_keras_model(model, (pixels.astype(np.uint8), labels), (pixels.astype(np.uint8), labels),
                                TrainConfig(epochs=10, batch_size=16, learning_rate=0.05))
print("replicas", strategy.num_replicas_in_sync, "val_accuracy", history["val_accuracy"][-1])
"""


@pytest.mark.slow  # a process of its own, with two replicas: over a minute here
def test_mirrored_strategy_over_two_logical_devices_extracts_the_same_features_and_trains(tiny):
    """Logical devices must be set before TensorFlow starts: a process of its own."""
    _, _, model_path = tiny
    finished = subprocess.run([sys.executable, "-c", textwrap.dedent(MIRRORED), str(model_path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    replicas, accuracy = finished.stdout.split()[1], float(finished.stdout.split()[3])
    assert replicas == "2" and accuracy > 0.9, finished.stdout
