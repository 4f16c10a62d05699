"""The `kernel-push` flow: publish the kit, push a kernel, wait for it, fetch its output, submit it."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.config import Config
from tasks.kernels import (KernelConfig, collect_kernel_output, publish_kit, push_kernel_version,
                           submit_kernel_output)
from tasks.paths import atomic_write_json


@flow(name="kernel-push")
def kernel_push(config: Config, kernel: KernelConfig = KernelConfig(), force: bool = False) -> Path:
    """Bundle and publish the kit, push and run the kernel, download its output, submit it; return kernel.json."""
    kernel_dir = config.paths.kernels(config.competition)
    bundle = publish_kit(config, kernel_dir)
    ref, version = push_kernel_version(config, kernel, kernel_dir)
    output = collect_kernel_output(kernel, kernel_dir, ref, version)
    result = submit_kernel_output(config, kernel_dir, output, ref, version, force) if kernel.submit else None
    return atomic_write_json(kernel_dir / f"kernel-v{version}.json", {
        "kernel": ref, "version": version, "bundle": bundle, "output": str(output), "submission": result})
