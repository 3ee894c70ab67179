#!/usr/bin/env bash
# Regenerates tests/known_answers/cases.json from independent implementations (python
# google-cloud-storage, botocore) installed at pinned versions into a throwaway venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet google-cloud-storage==3.17.1 botocore==1.44.5
"$venv/bin/python" tests/known_answers/generate.py
