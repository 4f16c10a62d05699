"""The `kernel-push` and `kernel-collect` flows: publish the kit, push a kernel (recorded), wait for it, fetch its
output, submit it; or, for a push made earlier, only the last three."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.orchestration import stage_task
from tasks.backends import backend_for, kernel_runs, kernels
from tasks.backends.kernels import KernelConfig
from tasks.config import Config
from tasks.files import atomic_write_json

open_backend = stage_task(backend_for, network=True, task_run_name="open the backend")
publish_kit = stage_task(kernels.publish_kit, network=True)
# Not retried: a push is not idempotent, and a 5xx after Kaggle accepted it would push a second version.
push_kernel_version = stage_task(kernel_runs.push_kernel_version)
collect_kernel_output = stage_task(kernel_runs.collect_kernel_output, network=True)
submit_kernel_output = stage_task(kernel_runs.submit_kernel_output, network=True)


@flow(name="kernel-push")
def kernel_push(config: Config, kernel: KernelConfig = KernelConfig(), force: bool = False) -> Path:
    """Bundle and publish the kit, push and run the kernel, download its output, submit it; return kernel-v<N>.json."""
    kernel_dir = config.paths.kernels(config.competition)
    backend = open_backend(config)  # once: it authenticates
    bundle = publish_kit(config, backend, kernel_dir, kernel.poll_interval)
    record = push_kernel_version(config, backend, kernel, kernel_dir, bundle)  # recorded in pushed.json
    return finish(config, backend, kernel, kernel_dir, record, force)


@flow(name="kernel-collect")
def kernel_collect(config: Config, kernel: KernelConfig = KernelConfig(), force: bool = False) -> Path:
    """Finish the last push of the competition's kernel: wait for it (or find it done), download its output and
    submit it, pushing nothing; return kernel-v<N>.json."""
    kernel_dir = config.paths.kernels(config.competition)
    record = kernel_runs.pushed(kernel_dir, config.competition)
    return finish(config, open_backend(config), kernel, kernel_dir, record, force)


def finish(config: Config, backend, kernel: KernelConfig, kernel_dir: Path, record: dict, force: bool) -> Path:
    output = collect_kernel_output(backend, kernel, kernel_dir, record)
    result = submit_kernel_output(config, backend, output, record, force) if kernel.submit else None
    return atomic_write_json(kernel_dir / f"kernel-v{record['version']}.json",
                             {**record, "output": str(output), "submission": result})
