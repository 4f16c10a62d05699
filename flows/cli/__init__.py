"""`headstart`: the command line, a thin layer over the flows and the backends.

One module per group of commands; the shared options, tables and the one place where expected errors
become `error: ...` and exit code 1 are in flows/cli/common.py.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from flows.cli.common import new_app
from flows.cli.host import host
from flows.cli.kaggle import leaderboard, submissions, submit
from flows.cli.kernel import kernel_app, tutorial
from flows.cli.local import local_app
from flows.cli.options import with_run_options
from flows.cli.run import backbones, run
from flows.cli.spec import spec
from flows.cli.watch import serve, watch

app = new_app("A Kaggle competition kit for image classification by transfer learning.")
app.command()(with_run_options(run))
app.command()(with_run_options(watch, needs_competition=True))
app.command()(with_run_options(serve, needs_competition=True))
app.command()(with_run_options(tutorial))
for command in (backbones, leaderboard, submissions, submit, spec, host):
    app.command()(command)
app.add_typer(local_app, name="local")
app.add_typer(kernel_app, name="kernel")


def main() -> None:
    # Quiet defaults for a command-line run; an explicit setting in the environment wins. Without an NVIDIA
    # device there is no GPU to find, and TensorFlow's failed CUDA probe ("failed call to cuInit") is noise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if Path("/dev/nvidiactl").exists() else "3")
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices, not problems
    # SIGTERM unwinds like Ctrl-C: atexit then stops the temporary Prefect server this process started (killed
    # outright, the run left it running, holding its port and our stdout), and no atomic write is left half-done.
    signal.signal(signal.SIGTERM, _interrupt)
    app()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    main()
