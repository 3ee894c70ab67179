#!/usr/bin/env bash
# Restores a dump into DATABASE_URL, replacing the broker's schema (`public`, which is all the
# broker's) as a whole, in one transaction: if anything fails, the database is as it was.
# (pg_restore --clean cannot replace a partitioned table: it drops a partition's inherited key
# first, which PostgreSQL refuses; the audit is partitioned by day since migration 0006.)
#   restore.sh storage-broker-20261124T021700Z.dump   # from gs://$BACKUP_BUCKET/storage-broker/
#   restore.sh ./local-copy.dump                      # a file already here
# Stop the broker (scale the Deployment to 0) first; start it again afterwards.
set -euo pipefail
name=${1:?usage: restore.sh DUMP (a name in gs://BACKUP_BUCKET/storage-broker/ or a local file)}
: "${DATABASE_URL:?DATABASE_URL is required}"
if [ -f "$name" ]; then
  file=$name
else
  : "${BACKUP_BUCKET:?BACKUP_BUCKET is required to fetch $name}"
  file=$(mktemp --suffix=.dump)
  trap 'rm -f "$file"' EXIT
  gcloud storage cp "gs://$BACKUP_BUCKET/storage-broker/$name" "$file"
fi
{
  # The schema as PostgreSQL 15 makes it: owned by the database's owner, usable by everyone.
  echo 'SET client_min_messages = warning;'
  echo 'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;'
  echo 'ALTER SCHEMA public OWNER TO pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;'
  echo "COMMENT ON SCHEMA public IS 'standard public schema';"
  pg_restore --no-owner --no-privileges --file=- "$file"
} | psql -X -q -v ON_ERROR_STOP=1 --single-transaction --dbname="$DATABASE_URL" >/dev/null
echo "restored $name"
