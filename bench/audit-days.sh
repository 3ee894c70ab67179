#!/usr/bin/env bash
# The partitioned audit against the one table it replaced: insert throughput through the
# broker's audit writer and PostgreSQL CPU per row, side by side, and dropping a day of
# 10,000,000 rows (benches/audit_days.rs), on a durable throwaway PostgreSQL. Writes the
# "Audit by day" section of BENCHMARKS.md and prints it. About 5 minutes, most of it seeding.
#   DROP_ROWS=1000000 BENCH_SECONDS=5 bench/audit-days.sh   # a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench audit_days
