"""`headstart submit`, `headstart host` and `headstart kernel push`: the commands that talk to Kaggle.

`flows/cli.py` registers them with `register(app)`; they share its console and error handling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="HEADSTART_DATA",
                                       help="Root of the data layers (default ./data, or $HEADSTART_DATA).")]
Backend = Annotated[str, typer.Option(help="local (a competition under data/local/) or kaggle.")]
Spec = Annotated[Optional[str], typer.Option(
    help="Spec of a Kaggle competition without a built-in one: a .toml file (see tasks/competitions.py).")]
kernel_app = typer.Typer(help="Kaggle notebooks: bundle the kit, render kernels/, push, collect the output.",
                         no_args_is_help=True)
ERRORS = (ValueError, FileNotFoundError, RuntimeError)


def competition_backend(name: str, data_dir: Path, backend: str, spec: str | None):
    """The backend a command talks to, or a clean error."""
    from flows.cli import _fail
    from tasks.backends import open_backend
    from tasks.paths import DataPaths

    try:
        return open_backend(name, DataPaths(data_dir), backend, spec)
    except ERRORS as error:
        _fail(error)


def show_leaderboard(name: str, data_dir: Path, backend: str, spec: str | None) -> None:
    """Print a competition's public leaderboard (each team's best)."""
    from flows.cli import _fail, _print_table

    competition = competition_backend(name, data_dir, backend, spec)
    try:
        rows = competition.leaderboard()
    except ERRORS as error:
        _fail(error)
    _print_table(f"{name} leaderboard ({competition.spec.metric})", rows, ["rank", "team", "score", "date", "ref"])


def show_submissions(name: str, data_dir: Path, backend: str, spec: str | None) -> None:
    """Print a competition's submissions, newest first."""
    from flows.cli import _fail, _print_table
    from tasks.local import LocalBackend

    competition = competition_backend(name, data_dir, backend, spec)
    try:
        rows = competition.submissions()
    except ERRORS as error:
        _fail(error)
    rows = list(reversed(rows)) if isinstance(competition, LocalBackend) else rows
    columns = ["ref", "date", "team", "file_name", "status", "public_score", "description", "error"]
    # Kaggle lists only your team's submissions: leave out the columns nobody filled.
    shown = [column for column in columns if any(row.get(column) not in (None, "") for row in rows)]
    _print_table(f"{name} submissions", rows, shown or columns)


def submit(
    competition: Annotated[str, typer.Argument(help="Competition name (local) or slug (Kaggle).")],
    file: Annotated[Optional[Path], typer.Argument(
        help="Submission CSV; default: the newest in data/06_submissions/<competition>/.")] = None,
    data_dir: DataDir = Path("data"),
    backend: Backend = "local",
    spec: Spec = None,
    message: Annotated[str, typer.Option(help="Submission description.")] = "headstart",
    force: Annotated[bool, typer.Option("--force", help="Send a file even if it was sent before.")] = False,
) -> None:
    """Validate a submission, check the day's quota, send it once, wait for its score, log it."""
    from flows.cli import _fail, console
    from tasks.backends import submit_file
    from tasks.config import Config
    from tasks.guard import newest_submission

    try:
        config = Config(competition=competition, data_dir=str(data_dir), backend=backend, spec=spec, message=message)
        path = file or newest_submission(config.paths.submissions(competition))
        record = submit_file(config, path, force=force, if_duplicate="raise")
    except ERRORS as error:
        _fail(error)
    console.print(f"{competition}: submission {record.get('ref')} of {path.name}: status {record.get('status')}, "
                  f"public score {record.get('public_score')}", soft_wrap=True, highlight=False)
    if record.get("error"):
        console.print(f"[red]submission error:[/] {record['error']}", soft_wrap=True, highlight=False)


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
    run_kernels: Annotated[bool, typer.Option(help="Run pushed kernels locally in a subprocess.")] = True,
    data_dir: DataDir = Path("data"),
) -> None:
    """Serve a local competition over Kaggle's HTTP API, for the unmodified kaggle client (CLI or library)."""
    from flows.cli import _fail, console
    from tasks.host import CompetitionHost, HostServer, HostSettings, parse_users

    backend = competition_backend(name, data_dir, "local", None)
    try:
        settings = HostSettings(users=parse_users(user or []), code_competition=code_competition,
                                rules_accepted_by=tuple(rules_accepted_by) if rules_accepted_by else None,
                                run_kernels=run_kernels)
        server = HostServer(CompetitionHost(backend, settings), address, port)
    except (ValueError, OSError) as error:
        _fail(error)
    console.print(f"serving {name!r} on {server.url} (Ctrl-C stops). Point the kaggle client at it with\n"
                  f"  export KAGGLE_API_ENVIRONMENT=LOCALHOST HTTP_PROXY={server.url} NO_PROXY=127.0.0.1",
                  soft_wrap=True, highlight=False)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


@kernel_app.command("push")
def kernel_push_command(
    competition: Annotated[str, typer.Argument(help="Kaggle competition slug.")],
    data_dir: DataDir = Path("data"),
    spec: Spec = None,
    kernel_type: Annotated[str, typer.Option("--type", help="script or notebook.")] = "script",
    accelerator: Annotated[str, typer.Option(help="none, gpu or tpu.")] = "none",
    dataset: Annotated[Optional[list[str]], typer.Option(
        "--dataset", help="Extra dataset to attach, e.g. weights: owner/slug (repeatable).")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help="Kaggle model to attach: owner/model/framework/instance/version (repeatable).")] = None,
    member: Annotated[Optional[list[str]], typer.Option("--member", help="Member to train (repeatable).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Most epochs per fold inside the kernel.")] = None,
    folds: Annotated[Optional[int], typer.Option(min=2, help="CV folds inside the kernel.")] = None,
    no_submit: Annotated[bool, typer.Option("--no-submit", help="Collect the output, do not submit it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Submit even a file sent before.")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between status checks.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Most seconds to wait for the kernel.")] = 4 * 3600.0,
    message: Annotated[str, typer.Option(help="Submission description.")] = "headstart",
) -> None:
    """Bundle the kit as a dataset, render and push the kernel, wait, download its output and submit it."""
    from flows.cli import _fail, console
    from flows.kernel import kernel_push
    from tasks.config import Config
    from tasks.kernels import KernelConfig

    settings = {key: value for key, value in (("members", member), ("epochs", epochs), ("folds", folds)) if value}
    try:
        config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle", spec=spec, message=message)
        kernel = KernelConfig(kernel_type=kernel_type, accelerator=accelerator, datasets=tuple(dataset or ()),
                              models=tuple(model or ()), settings=settings, poll_interval=poll_interval,
                              timeout=timeout, submit=not no_submit)
        record_path = kernel_push(config, kernel, force)
    except ERRORS as error:
        _fail(error)
    import json

    record = json.loads(Path(record_path).read_text())
    console.print(f"kernel {record['kernel']} v{record['version']}: output in {record['output']}", soft_wrap=True)
    if record["submission"]:
        result = record["submission"]
        console.print(f"submission {result.get('ref')}: status {result.get('status')}, "
                      f"public score {result.get('public_score')}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(host)
    app.add_typer(kernel_app, name="kernel")
