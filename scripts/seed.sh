#!/usr/bin/env bash
# Applies reference_sql/*.sql in order with psql and ON_ERROR_STOP. Every file is rerunnable,
# so seeding twice is harmless.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
files=(reference_sql/*.sql)
[ ${#files[@]} -gt 0 ] || { echo "seed: error: no files in reference_sql/" >&2; exit 1; }
for file in "${files[@]}"; do
  printf 'seed: %s\n' "$file" >&2
  scripts/psql.sh -X -q -v ON_ERROR_STOP=1 -f "$file" \
    || { printf 'seed: error: %s failed (see the psql message above)\n' "$file" >&2; exit 1; }
done
scripts/psql.sh -X -tA -c "SELECT 'seed: merchant_lookup rows: ' || count(*) FROM reference.merchant_lookup" >&2
