#!/usr/bin/env bash
# Decision latency on a cache miss at 1,000 and 1,000,000 grants (benches/decision.rs), on a
# durable throwaway PostgreSQL. Needs psql (PostgreSQL's client). Writes the "Decisions" section
# of BENCHMARKS.md and prints it. A few minutes, most of it seeding.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench decision
