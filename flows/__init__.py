"""headstart's orchestration: the Prefect flows, the Kaggle notebook entry, and the command line.

Prefect reads its settings when it is first imported, and every module here is imported after this one:
these defaults are set before. An explicit setting in the environment wins.
"""

import os

# A busy 2-core machine can take well over Prefect's default 20 s to start its temporary server.
PREFECT_STARTUP_TIMEOUT = 180
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(PREFECT_STARTUP_TIMEOUT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry attempts
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "headstart")  # the stages' warnings reach the run's log
