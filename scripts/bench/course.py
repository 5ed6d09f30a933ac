"""The course's method for `make bench`: pandas reads the raw rows, merges the merchant lookup,
and writes the result to Postgres with ``DataFrame.to_sql`` in 50,000-row chunks.

    python -m scripts.bench.course SCHEMA ROWS FILE [FILE ...]

Runs as the admin role (``to_sql`` creates its table). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
import sqlalchemy

from jobs.config.postgres_url import target_from_env

CHUNK_ROWS = 50_000


def engine() -> sqlalchemy.Engine:
    target = target_from_env(role="admin")
    url = sqlalchemy.URL.create(
        "postgresql+psycopg2",
        username=target.user,
        password=target.password or None,
        host=target.host,
        port=target.port,
        database=target.dbname,
        query=dict(target.params),
    )
    return sqlalchemy.create_engine(url)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m scripts.bench.course SCHEMA ROWS FILE [FILE ...]", file=sys.stderr)
        return 2
    schema, rows, files = argv[0], int(argv[1]), argv[2:]
    started = time.perf_counter()
    frames, left = [], rows
    for path in files:
        if left <= 0:
            break
        frame = pd.read_csv(path, nrows=left, dtype=str, on_bad_lines="skip")
        frames.append(frame)
        left -= len(frame)
    raw = pd.concat(frames, ignore_index=True)
    raw["amount"] = pd.to_numeric(raw["amount"], errors="coerce")
    raw["event_ts"] = pd.to_datetime(raw["event_ts"], errors="coerce", utc=True, format="ISO8601")
    db = engine()
    merchants = pd.read_sql(
        "SELECT merchant_id, merchant_name, category FROM reference.merchant_lookup", db
    )
    enriched = raw.merge(merchants, on="merchant_id", how="left")
    enriched["category"] = enriched["category"].fillna("UNKNOWN")
    read_done = time.perf_counter()
    enriched.to_sql(
        "course_enriched",
        db,
        schema=schema,
        if_exists="replace",
        index=False,
        chunksize=CHUNK_ROWS,
    )
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "rows": len(enriched),
                "read_and_merge_seconds": round(read_done - started, 3),
                "to_sql_seconds": round(finished - read_done, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
