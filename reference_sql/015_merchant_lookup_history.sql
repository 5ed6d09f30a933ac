-- Every version merchant_lookup has had, kept by the database: the batch and streaming jobs
-- join each transaction with the version valid at its event_ts (a lookup marked `temporal` in
-- conf/enrichment.toml reads <table>_history instead of <table>).
--
-- Seeding and correcting merchant_lookup with plain psql (INSERT ... ON CONFLICT, UPDATE,
-- DELETE) keeps working: a trigger records each change. A change takes effect at the
-- transaction's start (now()), or at the time given for the transaction:
--     BEGIN;
--     SET LOCAL enrich.effective_from = '2026-11-15 00:00+00';
--     UPDATE reference.merchant_lookup SET category = 'Travel' WHERE merchant_id = 'MER-000035';
--     COMMIT;
-- valid_from NULL: valid since the beginning of time (a key's first version, so transactions
-- older than the history still match); valid_to NULL: still valid. Overlapping versions of one
-- key are refused by the exclusion constraint, whoever writes them. Rerunnable.

CREATE TABLE IF NOT EXISTS reference.merchant_lookup_history (
    merchant_id   text        NOT NULL,
    merchant_name text        NOT NULL,
    category      text,
    valid_from    timestamptz,
    valid_to      timestamptz,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merchant_lookup_history_range_check
        CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_from <= valid_to),
    CONSTRAINT merchant_lookup_history_no_overlap
        EXCLUDE USING gist (merchant_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)
);
CREATE INDEX IF NOT EXISTS merchant_lookup_history_open_idx
    ON reference.merchant_lookup_history (merchant_id) WHERE valid_to IS NULL;

CREATE OR REPLACE FUNCTION reference.merchant_lookup_keep_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = reference, pg_temp AS $$
DECLARE
    effective timestamptz := coalesce(
        nullif(current_setting('enrich.effective_from', true), '')::timestamptz, now());
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE merchant_lookup_history SET valid_to = effective
        WHERE merchant_id = OLD.merchant_id AND valid_to IS NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO merchant_lookup_history (merchant_id, merchant_name, category, valid_from)
        SELECT NEW.merchant_id, NEW.merchant_name, NEW.category,
               CASE WHEN EXISTS (SELECT 1 FROM merchant_lookup_history h
                                 WHERE h.merchant_id = NEW.merchant_id)
                    THEN effective END;
    END IF;
    RETURN NULL;
END $$;

-- CREATE OR REPLACE, not DROP + CREATE: a rerun of the seed takes no lock that would wait for
-- (or block) the jobs' reads of the lookup.
CREATE OR REPLACE TRIGGER merchant_lookup_history_insert
    AFTER INSERT OR DELETE ON reference.merchant_lookup
    FOR EACH ROW EXECUTE FUNCTION reference.merchant_lookup_keep_history();
CREATE OR REPLACE TRIGGER merchant_lookup_history_update
    AFTER UPDATE ON reference.merchant_lookup
    FOR EACH ROW
    WHEN ((OLD.merchant_id, OLD.merchant_name, OLD.category)
          IS DISTINCT FROM (NEW.merchant_id, NEW.merchant_name, NEW.category))
    EXECUTE FUNCTION reference.merchant_lookup_keep_history();

-- Rows that were there before the history: their current version, valid since always.
INSERT INTO reference.merchant_lookup_history (merchant_id, merchant_name, category)
SELECT m.merchant_id, m.merchant_name, m.category
FROM reference.merchant_lookup m
WHERE NOT EXISTS (SELECT 1 FROM reference.merchant_lookup_history h
                  WHERE h.merchant_id = m.merchant_id);

-- Keys whose history has a hole between two versions (a correction gone wrong); empty when
-- the history is whole. A deleted key's last version simply ends.
CREATE OR REPLACE VIEW reference.merchant_lookup_history_gaps AS
SELECT merchant_id, valid_to AS gap_from, next_from AS gap_to
FROM (
    SELECT merchant_id, valid_to,
           lead(valid_from) OVER (PARTITION BY merchant_id ORDER BY valid_from NULLS FIRST)
               AS next_from
    FROM reference.merchant_lookup_history
) versions
WHERE next_from IS NOT NULL AND valid_to IS DISTINCT FROM next_from;
