"""The bench's Spark start-only measure: spark-submit (through scripts/submit.sh, like the jobs)
of a script that opens the jobs' session and closes it. What every job run pays before its
first row; the bench subtracts it to compare runs' marginal costs.

    scripts/submit.sh scripts/bench/start_only.py
"""

from __future__ import annotations

import sys

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings


def main() -> int:
    settings = load_settings()
    with spark_session("enrich-bench-start-only", settings.s3) as spark:
        print(f"start-only: Spark {spark.version} started and stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
