-- Roles and privileges. Run as the admin role (scripts/seed.sh does; it runs the other files as
-- the owner role). Rerunnable: roles and schemas are created if missing and brought to this
-- shape if they exist.
--
--   owner_role     (enrich_owner, cannot log in)  owns the schemas and every table in them
--   pipeline_role  (enrich_pipeline)  what the jobs log in as: reads the lookups, writes only the
--                                     pipeline schema's rows; no DDL, nothing elsewhere
--   reporting_role (enrich_reporting) dashboards and ad-hoc psql: reads both schemas, writes nothing
--   monitoring_role (enrich_monitoring) the Prometheus PostgreSQL exporter: pg_monitor (server
--                                     statistics), no table of either schema
--
-- Names come from psql variables (scripts/seed.sh sets them from POSTGRES_URL's and
-- POSTGRES_REPORTING_URL's user). Passwords come from the environment through \getenv and are
-- set only when given: ENRICH_PIPELINE_PASSWORD, ENRICH_REPORTING_PASSWORD,
-- ENRICH_MONITORING_PASSWORD.
\if :{?owner_role}
\else
\set owner_role enrich_owner
\endif
\if :{?pipeline_role}
\else
\set pipeline_role enrich_pipeline
\endif
\if :{?reporting_role}
\else
\set reporting_role enrich_reporting
\endif
\if :{?monitoring_role}
\else
\set monitoring_role enrich_monitoring
\endif

SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY[:'owner_role', :'pipeline_role', :'reporting_role', :'monitoring_role']) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) \gexec

ALTER ROLE :"owner_role" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"pipeline_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"reporting_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE :"monitoring_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
-- Server statistics only (pg_stat_*, settings), read-only, short queries.
GRANT pg_monitor TO :"monitoring_role";
ALTER ROLE :"monitoring_role" SET default_transaction_read_only = on;
ALTER ROLE :"monitoring_role" SET statement_timeout = '10s';
-- The reporting role cannot write even by mistake, and its ad-hoc queries are bounded.
ALTER ROLE :"reporting_role" SET default_transaction_read_only = on;
ALTER ROLE :"reporting_role" SET statement_timeout = '5min';

\getenv pipeline_password ENRICH_PIPELINE_PASSWORD
\if :{?pipeline_password}
ALTER ROLE :"pipeline_role" PASSWORD :'pipeline_password';
\unset pipeline_password
\endif
\getenv reporting_password ENRICH_REPORTING_PASSWORD
\if :{?reporting_password}
ALTER ROLE :"reporting_role" PASSWORD :'reporting_password';
\unset reporting_password
\endif
\getenv monitoring_password ENRICH_MONITORING_PASSWORD
\if :{?monitoring_password}
ALTER ROLE :"monitoring_role" PASSWORD :'monitoring_password';
\unset monitoring_password
\endif

-- The admin creates objects as the owner (SET ROLE); on a managed server it is no superuser.
SELECT format('GRANT %I TO %I', :'owner_role', current_user)
WHERE NOT pg_has_role(current_user, :'owner_role', 'MEMBER') \gexec

-- The database: only these roles connect; temporary tables (the summary write stages its rows
-- in one) only for the pipeline role.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'pipeline_role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'reporting_role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'monitoring_role') \gexec
SELECT format('ALTER DATABASE %I SET search_path = reference, pipeline, public', current_database()) \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- The reference history refuses overlapping validity ranges with an exclusion constraint on
-- (key WITH =, range WITH &&), which needs btree_gist's text operators (a trusted extension:
-- the database owner may create it, on managed servers too).
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

CREATE SCHEMA IF NOT EXISTS reference AUTHORIZATION :"owner_role";
CREATE SCHEMA IF NOT EXISTS pipeline AUTHORIZATION :"owner_role";
ALTER SCHEMA reference OWNER TO :"owner_role";
ALTER SCHEMA pipeline OWNER TO :"owner_role";

-- Tables made before these roles existed (older seeds, made by the admin) go to the owner.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'owner_role')
FROM pg_tables
WHERE schemaname IN ('reference', 'pipeline') AND tableowner <> :'owner_role' \gexec

REVOKE ALL ON SCHEMA reference, pipeline FROM PUBLIC;
GRANT USAGE ON SCHEMA reference, pipeline TO :"pipeline_role", :"reporting_role";

-- What exists now ...
REVOKE ALL ON ALL TABLES IN SCHEMA reference, pipeline FROM :"pipeline_role", :"reporting_role";
GRANT SELECT ON ALL TABLES IN SCHEMA reference TO :"pipeline_role", :"reporting_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pipeline TO :"pipeline_role";
GRANT SELECT ON ALL TABLES IN SCHEMA pipeline TO :"reporting_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pipeline TO :"pipeline_role";

-- ... and every table the owner adds later.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA reference
    GRANT SELECT ON TABLES TO :"pipeline_role", :"reporting_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA pipeline
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"pipeline_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA pipeline
    GRANT SELECT ON TABLES TO :"reporting_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA pipeline
    GRANT USAGE, SELECT ON SEQUENCES TO :"pipeline_role";
