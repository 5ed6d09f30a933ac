-- What the batch job writes: one audit row per run, and the daily summary of the curated table.
CREATE TABLE IF NOT EXISTS pipeline.enrichment_runs (
    run_id                     uuid PRIMARY KEY,
    job_name                   text NOT NULL,
    status                     text NOT NULL
                               CHECK (status IN ('running', 'succeeded', 'failed', 'noop')),
    started_at                 timestamptz NOT NULL DEFAULT now(),
    ended_at                   timestamptz,
    raw_table                  text,
    raw_version_read           bigint,
    curated_version_written    bigint,
    quarantine_version_written bigint,
    rows_read                  bigint,
    rows_curated               bigint,
    rows_unmatched             bigint,
    rows_quarantined           bigint,
    rows_duplicate             bigint,
    lookup_fingerprint         text,
    details                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    error                      text
);

CREATE INDEX IF NOT EXISTS enrichment_runs_started_at_idx
    ON pipeline.enrichment_runs (started_at DESC);

-- Equal, after every successful run, to the GROUP BY of the curated table.
CREATE TABLE IF NOT EXISTS pipeline.category_daily_summary (
    event_date        date          NOT NULL,
    category          text          NOT NULL,
    currency          char(3)       NOT NULL,
    transaction_count bigint        NOT NULL CHECK (transaction_count > 0),
    total_amount      numeric(20,2) NOT NULL,
    run_id            uuid          NOT NULL,
    PRIMARY KEY (event_date, category, currency)
);
