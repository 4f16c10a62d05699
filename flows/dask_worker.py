"""What a Dask worker process needs before its first headstart task, as a Dask preload module.

headstart's local cluster loads it into every worker; on a cluster of your own, start the workers with it:
`dask worker tcp://SCHEDULER:8786 --nthreads 1 --preload flows.dask_worker`. It gives TensorFlow as many threads
as the worker has (several TensorFlow processes each taking every core would fight over them), imports it with
its native start-up notes kept off the terminal, and turns off the progress bars: a worker runs one shard or one
fold of many at a time, and its bar would say "1/5 folds" beside its neighbours'; Prefect shows each task run.
"""

from __future__ import annotations

import logging
import os


def dask_setup(worker=None) -> None:
    """Called by Dask when the worker starts (before any task, so before TensorFlow is imported)."""
    threads = getattr(getattr(worker, "state", None), "nthreads", None) or 1
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from flows.quiet import import_tensorflow_quietly
    from tasks import progress

    import_tensorflow_quietly()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes: each fold task builds its model
    progress.SHOW_BARS = False
