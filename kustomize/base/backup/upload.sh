#!/usr/bin/env bash
# Copies the dumps in directory $1 to gs://$BACKUP_BUCKET/storage-broker/ (gcloud, as the
# Workload Identity service account; CLOUDSDK_* settings point it elsewhere in tests).
set -euo pipefail
dir=${1:?usage: upload.sh DIR}
: "${BACKUP_BUCKET:?BACKUP_BUCKET is required}"
shopt -s nullglob
dumps=("$dir"/*.dump)
[ ${#dumps[@]} -gt 0 ] || { echo "no dump in $dir" >&2; exit 1; }
gcloud storage cp "${dumps[@]}" "gs://$BACKUP_BUCKET/storage-broker/"
