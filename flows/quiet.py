"""TensorFlow imported without its native start-up notes on the terminal (absl's "All log messages before
absl::InitializeLog()...", CUDA probes): no setting silences them, and they are not the user's business. Called
by the command line once its options are valid, and at the top of the modules a Prefect worker or a served
deployment imports (flows/compete.py, flows/watch.py, flows/dask_worker.py), whose processes the command line
does not start itself."""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up notes (absl's "All log messages before
    absl::InitializeLog()...", CUDA probes) kept off the terminal: no setting silences them, and they are
    not the user's business. If the import fails, they are shown with the error."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as notes:
        os.dup2(notes.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            notes.seek(0)
            failed_with = notes.read().decode(errors="replace")
            raise
        else:
            failed_with = ""
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr.write(failed_with)
