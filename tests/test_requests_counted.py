"""Your rank without reading the whole leaderboard (issue 23, item 3): the requests a run and a watch make against a
host whose public leaderboard has 5,000 other teams. Paging through it is 251 requests of 20 rows (what both did
before: bench/kaggle_requests.py counts it); the competition's own userRank is one (kaggle-cli issues 1090, 1094)."""

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.hosting import USER

TEAMS = 5000


def crowd(hosted, teams: int = TEAMS) -> None:
    """`teams` other teams, each with one scored submission, written straight into the host's submission log."""
    rng, start = random.Random(0), datetime.now(timezone.utc) - timedelta(days=2)
    lines = [json.dumps({"ref": ref, "date": (start + timedelta(seconds=ref)).isoformat(), "team": f"team-{ref:05d}",
                         "file_name": "submission.csv", "sha256": f"{ref:064x}", "description": "",
                         "public_score": round(rng.uniform(0.5, 0.99), 5), "private_score": 0.5, "error": None,
                         "status": "complete"}) for ref in range(1, teams + 1)]
    hosted.backend.board_dir.mkdir(exist_ok=True)
    (hosted.backend.board_dir / "submissions.jsonl").write_text("\n".join(lines) + "\n")


def counted(hosted, since: int) -> Counter:
    return Counter(request["rpc"].split("/")[-1] for request in hosted.host.requests[since:] if request["rpc"])


def test_a_run_and_a_watch_read_one_page_of_a_5000_team_board(prefect_server, hosted, capfd):
    import dataclasses

    from flows.compete import run_compete
    from flows.watch import watch_once
    from tasks.config import Config
    from tasks.record import RunRecord
    from tasks.watch import WatchRules

    crowd(hosted)
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file,
                    members=("softmax",), folds=2)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))
    before = len(hosted.host.requests)
    record = RunRecord.read(run_compete(config))
    run = counted(hosted, before)
    expected_rank = next(row["rank"] for row in hosted.backend.leaderboard() if row["team"] == USER)
    assert record.backend_result["rank"] == expected_rank > 1  # the competition's userRank, after the score
    assert run["GetLeaderboard"] == 0 and run["GetCompetition"] == 1, run
    before = len(hosted.host.requests)
    first = watch_once(config, WatchRules(), retrain=False)
    watch = counted(hosted, before)
    assert watch["GetLeaderboard"] == 1 and watch["GetCompetition"] == 1 and sum(watch.values()) <= 6, watch
    assert first["numbers"]["rank"] == expected_rank
    snapshot = json.loads(Path(first["snapshot"]).read_text())
    assert len(snapshot["leaderboard"]) == 20 and snapshot["rank"] == expected_rank
    print(f"\nrequests against a {TEAMS + 1}-team board: run {sum(run.values())} {dict(run)}; "
          f"watch {sum(watch.values())} {dict(watch)}")
