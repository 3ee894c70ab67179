#!/usr/bin/env bash
# What one POST /v1/sign costs in CPU (benches/cost.rs): the broker's CPU per request with an
# RSA key and with an HMAC key, PostgreSQL's per audit row, read from /proc under a closed loop
# of oha, beside `openssl speed rsa2048` in the same run; with COST_PERF=1 (the default here)
# the hottest symbols from `perf record -g` too (Debian's linux-perf, installed when missing and
# running as root). Durable throwaway PostgreSQL. Writes the "Cost per request" section of
# BENCHMARKS.md and prints it. About 3 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v oha >/dev/null 2>&1; then
  echo "installing oha (load generator) from crates.io" >&2
  cargo install oha --locked --quiet
fi
export COST_PERF="${COST_PERF:-1}"
if [ "$COST_PERF" = 1 ] && ! command -v perf >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing perf (linux-perf) from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
cargo build --release --locked --bin storage-broker
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench cost
