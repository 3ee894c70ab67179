#!/usr/bin/env bash
# Restores a dump into DATABASE_URL, replacing what the dump holds, in one transaction:
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
pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction \
  --exit-on-error --dbname="$DATABASE_URL" "$file"
echo "restored $name"
