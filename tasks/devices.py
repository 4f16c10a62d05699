"""Where the models run: mixed precision, XLA and a tf.distribute strategy, chosen from the GPUs found.

On a GPU every lever is on by default (bench/RESULTS.md, "GPU"): XLA is the large one (4-9x over eager dispatch
for EfficientNet), `mixed_float16` adds 10-50 % where the GPU is the bottleneck, and several GPUs share the work
through `MirroredStrategy`. On a CPU all are off: XLA compiles for seconds and float16 is slower there. Every
setting can be forced either way in the config (DeviceConfig), so the GPU branch can be exercised on a CPU.
"""

from __future__ import annotations

import contextlib

import keras

from tasks.config import DeviceConfig
from tasks.runplan import DevicePlan

MIXED = "mixed_float16"


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def device_plan(config: DeviceConfig, gpus: int) -> DevicePlan:
    """Resolve 'auto' from the number of visible GPUs (pure: the count is given)."""
    mirrored = _switch(config.multi_gpu, gpus > 1) and gpus > 1
    # XLA with tf.distribute is left off, as Keras does for `jit_compile="auto"`.
    jit = _switch(config.jit_compile, gpus > 0 and not mirrored)
    # Training steps: Keras' own "auto" when the config leaves it open (on a GPU, unless a layer of the model cannot
    # be compiled or several replicas train), else what the config forces.
    return DevicePlan(gpus, _switch(config.mixed_precision, gpus > 0), jit, "mirrored" if mirrored else "default",
                      "auto" if config.jit_compile == "auto" else jit)


def visible_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_device_plan(config: DeviceConfig) -> DevicePlan:
    """The plan for this machine's GPUs."""
    return device_plan(config, visible_gpus())


def distribution_strategy(plan: DevicePlan):
    """MirroredStrategy over every visible GPU, or TensorFlow's default strategy (one device)."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if plan.strategy == "mirrored" else tf.distribute.get_strategy()


@contextlib.contextmanager
def device_scope(plan: DevicePlan):
    """Models built inside get the plan's compute policy and distribution strategy; the global policy is restored
    on leaving (Keras keeps it process-wide)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(plan.policy)
    try:
        with distribution_strategy(plan).scope():
            yield
    finally:
        keras.config.set_dtype_policy(previous)


def in_policy(model: keras.Model) -> keras.Model:
    """The model with every layer in the current global compute policy, same weights. A loaded `.keras` file keeps
    the policy it was saved with (float32), so under mixed precision its layers are rebuilt from their configs."""
    policy = keras.config.dtype_policy().name
    if policy == "float32" or all(layer.dtype_policy.name == policy for layer in model.layers):
        return model

    def rebuild(layer):
        config = layer.get_config()
        if "dtype" in config and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=rebuild, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def extraction_jit(jit_compile: bool | str) -> bool:
    """XLA for a frozen backbone's forward pass: every backbone compiles; "auto" is on with one GPU."""
    return jit_compile if isinstance(jit_compile, bool) else visible_gpus() > 0 and replicas() == 1


def replicas() -> int:
    """Replicas of the strategy in scope (1 outside any)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
