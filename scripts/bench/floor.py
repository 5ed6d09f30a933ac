"""The Spark floor for `make bench`: the raw Delta table copied to another Delta table on the
object store, with the batch job's session settings and nothing else (no validation, no join,
no Postgres). spark-submitted through scripts/submit.sh like the jobs:

    scripts/submit.sh scripts/bench/floor.py SOURCE_PATH TARGET_PATH
"""

from __future__ import annotations

import sys

from jobs.adapters.session import spark_session
from jobs.config.settings import load_settings


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: floor.py SOURCE_PATH TARGET_PATH", file=sys.stderr)
        return 2
    source, target = argv
    settings = load_settings()
    with spark_session("enrich-bench-floor", settings.s3) as spark:
        raw = spark.read.format("delta").load(source)
        raw.write.format("delta").mode("overwrite").save(target)
        version = spark.sql(f"DESCRIBE HISTORY delta.`{target}` LIMIT 1").first()
        print(f"floor: copied {source} to {target} (version {version and version['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
