-- What the batch job writes: one audit row per run, and the daily summary of the curated table.
-- Rerunnable: tables are created if missing and brought up to this shape if they are older.
CREATE TABLE IF NOT EXISTS pipeline.enrichment_runs (
    run_id                     uuid PRIMARY KEY,
    job_name                   text NOT NULL,
    status                     text NOT NULL,
    started_at                 timestamptz NOT NULL DEFAULT now(),
    ended_at                   timestamptz,
    raw_table                  text,
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

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = 'pipeline' AND table_name = 'enrichment_runs'
                 AND column_name = 'raw_version_read') THEN
        ALTER TABLE pipeline.enrichment_runs RENAME COLUMN raw_version_read TO raw_version_to;
    END IF;
END $$;

ALTER TABLE pipeline.enrichment_runs
    ADD COLUMN IF NOT EXISTS mode             text,
    ADD COLUMN IF NOT EXISTS curated_table    text,
    ADD COLUMN IF NOT EXISTS quarantine_table text,
    -- raw table versions this run covered (from..to, inclusive); to = the watermark it leaves
    ADD COLUMN IF NOT EXISTS raw_version_from bigint,
    ADD COLUMN IF NOT EXISTS raw_version_to   bigint,
    -- --from-date/--to-date runs: the event dates replaced
    ADD COLUMN IF NOT EXISTS range_from       date,
    ADD COLUMN IF NOT EXISTS range_to         date,
    -- earlier curated rows replaced by a later record of the same transaction id
    ADD COLUMN IF NOT EXISTS rows_replaced    bigint,
    ADD COLUMN IF NOT EXISTS summary_dates_rewritten bigint,
    -- runs that had died or failed before this one and whose work it completed
    ADD COLUMN IF NOT EXISTS recovered_runs   uuid[] NOT NULL DEFAULT '{}',
    -- where the driver ran (host:pid), to find a crashed run's logs
    ADD COLUMN IF NOT EXISTS driver           text;

ALTER TABLE pipeline.enrichment_runs DROP CONSTRAINT IF EXISTS enrichment_runs_status_check;
ALTER TABLE pipeline.enrichment_runs ADD CONSTRAINT enrichment_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'noop', 'crashed'));
ALTER TABLE pipeline.enrichment_runs DROP CONSTRAINT IF EXISTS enrichment_runs_mode_check;
ALTER TABLE pipeline.enrichment_runs ADD CONSTRAINT enrichment_runs_mode_check
    CHECK (mode IS NULL OR mode IN ('full', 'incremental', 'range'));

CREATE INDEX IF NOT EXISTS enrichment_runs_started_at_idx
    ON pipeline.enrichment_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS enrichment_runs_curated_idx
    ON pipeline.enrichment_runs (curated_table, started_at DESC);

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

-- What the streaming job writes: one row per micro-batch, in the same transaction as that
-- micro-batch's summary rows and run record, keyed by the streaming query and its batch id, so
-- that a micro-batch replayed after a crash finds its row and changes nothing.
CREATE TABLE IF NOT EXISTS pipeline.stream_batches (
    query_id       uuid        NOT NULL,
    batch_id       bigint      NOT NULL,
    run_id         uuid,          -- the enrichment run of this micro-batch (enrichment_runs)
    committed_at   timestamptz NOT NULL DEFAULT now(),
    files          integer     NOT NULL,
    files_refused  integer     NOT NULL,
    rows_ingested  bigint      NOT NULL,
    raw_version    bigint,        -- the raw table's version after this micro-batch's append
    duration_s     numeric(10,3) NOT NULL,
    lag_s          numeric(10,3), -- from the oldest file's landing to this commit
    details        jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- files, and why any were refused
    PRIMARY KEY (query_id, batch_id)
);
CREATE INDEX IF NOT EXISTS stream_batches_committed_at_idx
    ON pipeline.stream_batches (committed_at DESC);
