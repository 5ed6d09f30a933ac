#!/usr/bin/env bash
# Prints the bin directory of the newest PostgreSQL server (15 or newer) on this machine.
set -euo pipefail
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
  major=$(basename "$(dirname "$dir")")
  if [ "$major" -ge 15 ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"; exit 0
  fi
done
if command -v pg_config >/dev/null; then
  dir=$(pg_config --bindir)
  major=$(pg_config --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
  if [ "$major" -ge 15 ] && [ -x "$dir/initdb" ]; then echo "$dir"; exit 0; fi
fi
echo "no PostgreSQL server >= 15 found" >&2
exit 1
