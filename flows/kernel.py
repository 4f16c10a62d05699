"""The `kernel-push` flow: publish the kit, push a kernel, wait for it, fetch its output, submit it."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.orchestration import stage_task
from tasks.backends import backend_for, kernels
from tasks.backends.kernels import KernelConfig
from tasks.config import Config
from tasks.files import atomic_write_json

open_backend = stage_task(backend_for, network=True, task_run_name="open the backend")
publish_kit = stage_task(kernels.publish_kit, network=True)
# Not retried: a push is not idempotent, and a 5xx after Kaggle accepted it would push a second version.
push_kernel_version = stage_task(kernels.push_kernel_version)
collect_kernel_output = stage_task(kernels.collect_kernel_output, network=True)
submit_kernel_output = stage_task(kernels.submit_kernel_output, network=True)


@flow(name="kernel-push")
def kernel_push(config: Config, kernel: KernelConfig = KernelConfig(), force: bool = False) -> Path:
    """Bundle and publish the kit, push and run the kernel, download its output, submit it; return kernel.json."""
    kernel_dir = config.paths.kernels(config.competition)
    backend = open_backend(config)  # once: it authenticates
    bundle = publish_kit(config, backend, kernel_dir, kernel.poll_interval)
    ref, version = push_kernel_version(config, backend, kernel, kernel_dir, bundle)
    output = collect_kernel_output(backend, kernel, kernel_dir, ref, version)
    result = submit_kernel_output(config, backend, output, ref, version, force) if kernel.submit else None
    return atomic_write_json(kernel_dir / f"kernel-v{version}.json", {
        "kernel": ref, "version": version, "bundle": bundle, "output": str(output), "submission": result})
