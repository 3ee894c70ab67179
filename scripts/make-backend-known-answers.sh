#!/usr/bin/env bash
# Regenerates tests/known_answers/backends.json (S3 SigV4 presigned URLs and POST policies, Azure
# Blob SAS) from independent implementations (botocore, python azure-storage-blob) installed at
# pinned versions into a throwaway venv. The generator's seed is fixed: reruns give the same file.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet botocore==1.44.8 azure-storage-blob==12.31.1 azure-core==1.41.0
"$venv/bin/python" tests/known_answers/generate_backends.py
