#!/usr/bin/env bash
# Dumps DATABASE_URL (pg_dump custom format, restorable with pg_restore) into directory $1 as
# storage-broker-<UTC time>.dump, and checks that pg_restore can read it back.
set -euo pipefail
dir=${1:?usage: dump.sh DIR}
: "${DATABASE_URL:?DATABASE_URL is required}"
file="$dir/storage-broker-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --no-owner --no-privileges --file="$file" "$DATABASE_URL"
pg_restore --list "$file" >/dev/null
echo "dumped $(wc -c <"$file") bytes to $file"
