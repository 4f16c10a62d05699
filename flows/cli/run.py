"""`headstart run` and `headstart backbones`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import (
    AsJson,
    console,
    print_json,
    print_table,
    score_text,
    stdout_for_results,
    submission_summary,
)
from flows.cli.options import DataDirOption
from tasks.record import RunRecord, run_json_path


def run(
    competition: Annotated[Optional[str], typer.Argument(
        help="Competition slug; default: the --config file's, else the built-in offline one, digits.",
        show_default=False)] = None,
    data_dir: Annotated[Optional[Path], DataDirOption] = None,
    as_json: AsJson = False,
    *, config, runner,
) -> None:
    """Fetch, index, extract features, train, blend, write a validated submission and submit it."""
    started = time.time()  # the time limit counts from now: Prefect's start-up is part of the run
    from flows.cli.common import check_run_choices

    check_run_choices(config, runner)  # before Prefect starts and the competition is fetched and indexed
    from flows.compete import run_compete

    with stdout_for_results(as_json):
        record = RunRecord.read(run_compete(config, runner, started))
    if as_json:
        return print_json({**record.to_dict(), "run_json": str(run_json_path(config, record.run_id))})
    show_run(record)
    print(run_json_path(config, record.run_id))


def show_run(record: RunRecord) -> None:
    """The CV table, the blend's score, the leaderboard score and the submission's path."""
    print_table(f"{record.competition}: CV {record.metric}", [
        *({"member": name, "cv": f"{score:.4f}", "weight": f"{record.weights[name]:.2f}"}
          for name, score in record.members.items()),
        {"member": f"blend ({record.blend})", "cv": f"{record.blend_cv_score:.4f}", "weight": ""}],
        ["member", "cv", "weight"])
    nested = record.blend_nested_cv_score
    honest = f" (nested, the blend's weights fitted on the other folds: {nested:.4f})" if nested is not None else ""
    scored, rows = record.blend_rows_scored, record.blend_rows
    partly = (f"; on the {scored} of {rows} training rows that every member predicted (some trained only some "
              "folds: finetune, a budget's plan, --time-limit)" if scored is not None and scored < rows else "")
    console.print(f"CV {record.metric}: {record.blend_cv_score:.4f}{honest}{partly}", soft_wrap=True)
    if record.decision and record.decision["kind"] in ("thresholds", "cut_points"):
        console.print(decision_line(record.decision), soft_wrap=True, highlight=False)
    if record.time_limit:
        console.print(time_limit_line(record.time_limit), soft_wrap=True)
    if record.plan.get("budget"):
        console.print(budget_line(record.plan["budget"], record.config.get("folds")), soft_wrap=True, highlight=False)
    result = record.backend_result
    if result is not None:
        console.print(f"public leaderboard score: {score_text(result.get('public_score'))} "
                      f"({submission_summary(result)})", soft_wrap=True, highlight=False, markup=False)
    console.print(f"submission: {record.submission}", soft_wrap=True, highlight=False)


def decision_line(decision: dict) -> str:
    """The decision fitted on the out-of-fold rows, in one line."""
    values = decision.get("thresholds") or decision.get("cut_points")
    what = "thresholds per tag" if decision["kind"] == "thresholds" else "cut points between grades"
    shown = ", ".join(f"{value:.2f}" for value in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"decision fitted on the out-of-fold rows: {what} {shown}"


def budget_line(budget: dict, folds: int | None) -> str:
    """What the budget bought a member (the large grey recipe's CNN, the colour recipe's finetune), in one line."""
    from tasks import budget_plan
    from tasks.recipes import MemberName

    member = budget.get("member", "cnn")
    kind = MemberName.parse(member).kind
    share = "its share of " if kind == "finetune" else ""
    floor = (f", at least {budget_plan.MIN_DEFAULT_SECONDS / 60:g} min"
             if budget["budget_seconds"] == budget_plan.MIN_DEFAULT_SECONDS else "")
    source = (f"{share}what --time-limit left" if budget["budget_source"] == "--time-limit" else
              f"the default, {1000 * budget_plan.DEFAULT_SECONDS[kind]:g} ms per training image{floor}; "
              "--time-limit MINUTES sets another")
    per_image = 1000 * budget["cost"]["train"]
    name = "the CNN" if member == "cnn" else member
    return (f"budget {budget['budget_seconds'] / 60:.1f} min ({source}): {name} planned {budget['epochs']} epochs "
            f"on {budget['folds']} of {folds} folds, planned from {per_image:.1f} ms per training image measured here "
            f"(about {budget['estimated_seconds'] / 60:.1f} min)")


def time_limit_line(report: dict) -> str:
    """What the time limit did, in one line."""
    ended = [f"{name} ({folds} fold{'s' * (folds != 1)})" for name, folds in report["ended"].items()]
    parts = ([f"ended early, keeping the folds they finished: {', '.join(ended)}"] if ended else []) + \
        ([f"skipped: {', '.join(report['skipped'])}"] if report["skipped"] else [])
    what = "; ".join(parts) + "; the blend is of what finished" if parts else "every member finished in time"
    return f"time limit {report['minutes']:g} min: {what}"


def backbones() -> None:
    """List the registered backbones (plus file:PATH.keras for your own)."""
    from flows.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tasks.backbones import BACKBONES

    print_table("backbones", [{"name": spec.name, "keras": spec.builder, "size": spec.input_size,
                               "width": spec.feature_width, "preprocessing": spec.preprocessing or "in model",
                               "weights file": spec.weights_file} for spec in BACKBONES.values()],
                ["name", "keras", "size", "width", "preprocessing", "weights file"])
