#!/usr/bin/env bash
# The broker end to end (benches/broker.rs): /v1/sign at 2,000 req/s and unthrottled, a 10,000-item
# batch beside openssl speed, RSS idle and during batches. Installs oha from crates.io when
# missing and runs on a throwaway PostgreSQL with fsync on. Writes the "Broker" section of
# BENCHMARKS.md and prints it. About 3 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v oha >/dev/null 2>&1; then
  echo "installing oha (load generator) from crates.io" >&2
  cargo install oha --locked --quiet
fi
cargo build --release --locked --bin storage-broker
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench broker
