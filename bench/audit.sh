#!/usr/bin/env bash
# Audit reads (GET /v1/buckets/{bucket}/audit, GET /v1/audit) with 10 million audit rows seeded,
# through the HTTP API of a broker built in release mode, on a durable throwaway PostgreSQL
# (benches/audit_reads.rs). Writes the "Audit reads" section of BENCHMARKS.md and prints it.
# Several minutes, most of them seeding.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench audit_reads
