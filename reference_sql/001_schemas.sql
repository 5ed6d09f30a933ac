-- Schemas: reference data (lookups the jobs read) and pipeline outputs (what the jobs write).
-- Unqualified names (merchant_lookup, enrichment_runs, ...) resolve through the search_path.
CREATE SCHEMA IF NOT EXISTS reference;
CREATE SCHEMA IF NOT EXISTS pipeline;

ALTER DATABASE :"DBNAME" SET search_path = reference, pipeline, public;
SET search_path = reference, pipeline, public;
