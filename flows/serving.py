"""Deployments of one competition: `compete` on a cron schedule and on the watcher's event, `watch` on an interval.

`serve_competition` serves both from this process with Prefect's `serve`; prefect.yaml at the top of
the repository deploys the same two onto a process work pool for a team with a server and a worker.
"""

from __future__ import annotations

import dataclasses

from prefect.events import DeploymentEventTrigger
from prefect.settings import PREFECT_API_URL

from flows.compete import compete
from flows.options import Runner, config_json
from flows.watch import resource_id, watch_flow
from tasks.config import Config
from tasks.errors import ConfigError
from tasks.watch import EVENT, WatchRules


def deployments(config: Config, rules: WatchRules, cron: str | None, watch_every: int,
                runner: Runner = Runner()) -> list:
    """The `compete` deployment (cron + the event trigger) and the `watch` deployment (interval), both with the
    whole run config: a served retrain runs as `headstart run` with the same options would."""
    parameters = {"config": config_json(config), "runner": dataclasses.asdict(runner)}
    # The retrain climbs the ladder: the watcher's event says to which rung, and whether the data is new.
    climbing = {**parameters, "rung": "{{ event.payload.rung }}", "new_data": "{{ event.payload.new_data }}"}
    trigger = DeploymentEventTrigger(
        name=f"retrain {config.competition} when its leaderboard moves", expect={EVENT},
        match={"prefect.resource.id": resource_id(config.competition)}, parameters=climbing)
    retrain = compete.to_deployment(name=f"compete-{config.competition}", cron=cron, parameters=parameters,
                                    triggers=[trigger], description=f"Retrain and submit {config.competition}")
    watcher = watch_flow.to_deployment(
        name=f"watch-{config.competition}", interval=watch_every,
        parameters={**parameters, "rules": dataclasses.asdict(rules), "retrain": False},
        description=f"Watch {config.competition}'s leaderboard; emit {EVENT} when it moves")
    return [retrain, watcher]


def serve_competition(config: Config, rules: WatchRules, cron: str | None, watch_every: int,
                      runner: Runner = Runner()) -> None:
    if not PREFECT_API_URL.value():
        raise ConfigError("`headstart serve` needs a Prefect server: start one with `prefect server start` and set "
                          "PREFECT_API_URL=http://127.0.0.1:4200/api (a temporary server would vanish with this "
                          "process, and the event trigger with it)")
    serve_until_stopped(deployments(config, rules, cron, watch_every, runner))


def serve_until_stopped(served: list) -> None:
    """Serve the deployments from this process until SIGTERM or Ctrl-C; then stop as Prefect's runner stops when
    told to: a run in flight is cancelled (state Cancelled, "Runner is shutting down."), not left to crash with the
    process, and the deployments' schedules are paused."""
    import asyncio
    import signal

    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True)
    for deployment in served:
        runner.add_deployment(deployment)

    async def until_stopped() -> None:
        loop, stopping = asyncio.get_running_loop(), []

        def stop() -> None:
            if not stopping:  # a second signal while stopping: the first one is being honoured
                stopping.append(asyncio.ensure_future(runner.astop()))

        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop)
        await runner.start()

    asyncio.run(until_stopped())
