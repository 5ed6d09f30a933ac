#!/usr/bin/env bash
# Applies reference_sql/*.sql in order with psql and ON_ERROR_STOP, as the admin role
# (POSTGRES_ADMIN_URL): 000_roles.sql as the admin itself, the others as the owner role, so
# every table belongs to the owner and its default privileges cover it. Every file is
# rerunnable, so seeding twice is harmless. The pipeline and reporting roles are the users of
# POSTGRES_URL and POSTGRES_REPORTING_URL; their passwords (POSTGRES_PASSWORD,
# POSTGRES_REPORTING_PASSWORD or *_FILE) are set when given, through psql's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { printf 'seed: error: %s\n' "$*" >&2; exit 1; }
shopt -s nullglob
files=(reference_sql/*.sql)
[ ${#files[@]} -gt 0 ] || die "no files in reference_sql/"
eval "$(python3 -m scripts.stack_env seed)"
# One seeding at a time on this machine: roles are server-wide, and two concurrent GRANTs or
# ALTER ROLEs on the same role fail ("tuple concurrently updated").
mkdir -p "${STACK_DIR:-.stack}"
exec 9>"${STACK_DIR:-.stack}/seed.lock"
flock 9
owner_role=${ENRICH_OWNER_ROLE:-enrich_owner}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"  # no NOTICEs of IF EXISTS steps
roles=(-v "owner_role=$owner_role" -v "pipeline_role=$pipeline_role" -v "reporting_role=$reporting_role"
       -v "monitoring_role=$monitoring_role")
for file in "${files[@]}"; do
  printf 'seed: %s\n' "$file" >&2
  as_owner=("-c" "SET ROLE \"$owner_role\"")
  case "$file" in reference_sql/000_*) as_owner=() ;; esac
  scripts/psql.sh --role=admin -X -q -v ON_ERROR_STOP=1 "${roles[@]}" "${as_owner[@]}" -f "$file" \
    || die "$file failed (see the psql message above)"
done
unset ENRICH_PIPELINE_PASSWORD ENRICH_REPORTING_PASSWORD ENRICH_MONITORING_PASSWORD
scripts/psql.sh --role=admin -X -tA -c "SELECT 'seed: merchant_lookup rows: ' || count(*) FROM reference.merchant_lookup" >&2
