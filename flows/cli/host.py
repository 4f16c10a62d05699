"""`headstart host`: serve a local competition over Kaggle's HTTP API."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import DataDir, competition_backend, console


def _naive_utc(moment: datetime | None) -> datetime | None:
    """A date given with a zone, as naive UTC; one given without is taken to be UTC already."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def host(
    name: Annotated[str, typer.Argument(help="Local competition to serve (data/local/NAME).")] = "digits",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")] = 8765,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    user: Annotated[Optional[list[str]], typer.Option(
        "--user", envvar="HEADSTART_HOST_USERS",
        help="NAME:KEY allowed to call (repeatable; default: anyone). Keys in the environment stay out of `ps`.")] = None,
    rules_accepted_by: Annotated[Optional[list[str]], typer.Option(
        "--rules-accepted-by", help="Only these users have accepted the rules; others get 403 (repeatable).")] = None,
    code_competition: Annotated[bool, typer.Option(
        "--code-competition", help="Accept submissions only from notebooks (CreateCodeSubmission).")] = False,
    run_kernels: Annotated[bool, typer.Option(help="Run pushed kernels locally (in a bubblewrap sandbox).")] = True,
    unsafe_kernels: Annotated[bool, typer.Option(
        "--unsafe-kernels", help="Run pushed kernels even without a sandbox: they can then read the hidden "
                                 "solution and any file this user can.")] = False,
    dataset_processing_seconds: Annotated[float, typer.Option(
        help="A new dataset version is not ready until this many seconds after upload, as on Kaggle.")] = 0.0,
    dataset_registration_seconds: Annotated[float, typer.Option(
        help="A new dataset version's number is reported (and mounted) only this many seconds after upload.")] = 0.0,
    rate_limit: Annotated[Optional[list[str]], typer.Option(
        "--rate-limit", help="METHOD=CALLS/SECONDS: more calls of that RPC per user are answered 429 with "
                             "Retry-After, as Kaggle does (e.g. DownloadDataFiles=1/1800; repeatable).")] = None,
    code_scoring_seconds: Annotated[float, typer.Option(
        help="A code submission stays PENDING this long (Kaggle re-runs the notebook to score it).")] = 0.0,
    total_limit: Annotated[Optional[int], typer.Option(
        help="A cap on each team's submissions over the whole competition (Kaggle's limitedByTotal).")] = None,
    deadline: Annotated[Optional[datetime], typer.Option(
        help="The competition's end (UTC): private scores stay hidden until then (default: it never ends).")] = None,
    max_upload_mb: Annotated[int, typer.Option(help="Largest file a client may upload, in MiB.")] = 2048,
    kernel_timeout: Annotated[float, typer.Option(
        min=1, help="A pushed kernel's longest time limit, in seconds: its own session timeout (`kaggle kernels "
                    "push -t`) when shorter.")] = 3600,
    kernel_internet: Annotated[bool, typer.Option(
        help="Let a kernel pushed with enable_internet reach the network (--no-kernel-internet: none may).")] = True,
    kernel_memory_mb: Annotated[int, typer.Option(
        min=256, help="A kernel's address space, in MiB (TensorFlow needs about 2,300).")] = 8192,
    kernel_processes: Annotated[int, typer.Option(
        min=8, help="A kernel's processes and threads (a host run as root: all its kernels' together).")] = 512,
    kernel_output_mb: Annotated[int, typer.Option(min=1, help="A kernel's output in all, in MiB.")] = 4096,
    kernel_tmp_mb: Annotated[int, typer.Option(
        min=1, help="A kernel's /tmp and its /dev/shm, each in MiB (held in memory).")] = 1024,
    kernels_at_once: Annotated[int, typer.Option(min=1, help="Kernels run at once; the others wait, QUEUED.")] = 2,
    download_kib_per_second: Annotated[Optional[float], typer.Option(
        min=1, help="Serve files no faster than this (KiB/s): a slow network, to try a cut-off download.")] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Serve a local competition over Kaggle's HTTP API, for the unmodified kaggle client (CLI or library)."""
    from tasks.backends.local import LocalBackend
    from tasks.errors import ConfigError
    from tasks.host.common import HostSettings, parse_rate_limits, parse_users
    from tasks.host.sandbox import kernel_refusal
    from tasks.host.server import HostServer
    from tasks.host.state import CompetitionHost

    # The hosted board: this machine's own practice runs (`headstart run NAME`) never show on it.
    backend = LocalBackend(competition_backend(name, data_dir, "local", None).root, board="hosted")
    settings = HostSettings(users=parse_users(user or []), code_competition=code_competition,
                            rules_accepted_by=tuple(rules_accepted_by) if rules_accepted_by else None,
                            run_kernels=run_kernels, unsafe_kernels=unsafe_kernels,
                            dataset_processing_seconds=dataset_processing_seconds,
                            dataset_registration_seconds=dataset_registration_seconds,
                            rate_limits=parse_rate_limits(rate_limit or []), kernel_internet=kernel_internet,
                            code_scoring_seconds=code_scoring_seconds, total_limit=total_limit,
                            max_upload_bytes=max_upload_mb * 2**20, deadline=_naive_utc(deadline),
                            kernel_timeout=kernel_timeout, kernel_memory_bytes=kernel_memory_mb * 2**20,
                            kernel_processes=kernel_processes, kernel_output_bytes=kernel_output_mb * 2**20,
                            kernel_tmp_bytes=kernel_tmp_mb * 2**20, kernels_at_once=kernels_at_once,
                            download_bytes_per_second=download_kib_per_second and download_kib_per_second * 1024)
    try:
        server = HostServer(CompetitionHost(backend, settings), address, port)
    except OSError as error:  # the address is taken or not ours
        raise ConfigError(f"cannot listen on {address}:{port}: {error.strerror or error}") from None
    console.print(f"serving {name!r} on {server.url} (Ctrl-C stops). Point the kaggle client at it with\n"
                  f"  export KAGGLE_API_ENVIRONMENT=LOCALHOST HTTP_PROXY={server.url} NO_PROXY=127.0.0.1",
                  soft_wrap=True, highlight=False, markup=False)
    refusal = kernel_refusal(settings, backend.root) if run_kernels else None
    if refusal:  # the host serves everything else; a push that would run answers this, with a 403
        console.print(f"pushed kernels will not run: {refusal}", soft_wrap=True, highlight=False, markup=False)
    server.serve()
