#!/usr/bin/env bash
# The reliability suite: fuzzing, then benches/reliability.rs (load, PostgreSQL and issuer faults,
# rate limiting, schemathesis, audit completeness, secrets in logs) against the release broker.
#   scripts/reliability.sh           # full: 10 min of load, 10 min per fuzz target (36 min here)
#   scripts/reliability.sh --quick   # 60 s of load, 20 s per fuzz target (2.5 min here once built)
# Installs what it needs (oha and cargo-fuzz from crates.io, schemathesis from PyPI,
# fake-gcs-server), writes RELIABILITY.md, and exits 0 only when every figure meets its goal.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full fuzz_seconds=600
if [ "${1:-}" = --quick ]; then mode=quick fuzz_seconds=20; fi

command -v oha >/dev/null 2>&1 || { echo "installing oha" >&2; cargo install oha --locked --quiet; }
command -v cargo-fuzz >/dev/null 2>&1 || { echo "installing cargo-fuzz" >&2; cargo install cargo-fuzz --locked --quiet; }
venv="$PWD/target/tools/reliability"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis==4.32.5
fi
FAKE_GCS_SERVER=${FAKE_GCS_SERVER:-$(scripts/fake-gcs-server)}
export FAKE_GCS_SERVER SCHEMATHESIS="$venv/bin/schemathesis"

echo "== building (release broker, fuzz targets)"
cargo build --release --locked --quiet --bin storage-broker
# No nightly toolchain is reachable here: stable rustc takes cargo-fuzz's -Z flags with
# RUSTC_BOOTSTRAP=1, given to cargo-fuzz alone (exported, it would rebuild everything else).
fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fuzz build >/dev/null 2>&1 || fuzz build

echo "== fuzzing: $fuzz_seconds s per target, two at a time"
out=target/reliability
mkdir -p "$out"
corpus="$out/corpus"
mkdir -p "$corpus"/{request_bodies,names,token,policies}
echo '{"bucket": "u-alice", "object": "photos/cat.jpg", "method": "PUT", "content_type": "image/png", "expires_in": 600}' >"$corpus/request_bodies/sign.json"
echo '{"items": [{"bucket": "p-vision", "object": "a", "method": "GET"}], "expires_in": 60}' >"$corpus/request_bodies/batch.json"
echo '{"prefix": "shared/", "principal": "group:/vision", "role": "viewer"}' >"$corpus/request_bodies/grant.json"
printf 'users/alice/cat.png' >"$corpus/names/object"
printf 'u-alice' >"$corpus/names/bucket"
printf 'group:/vision/team' >"$corpus/names/principal"
printf 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MSwiYXVkIjpbImEiXSwiZ3JvdXBzIjpbIi92Il0sInJlYWxtX2FjY2VzcyI6eyJyb2xlcyI6WyJyIl19fQ.c2ln' >"$corpus/token/jwt"
{ cat policies/roles.toml; printf '\0'; cat policies/classes.toml; } >"$corpus/policies/shipped"

fuzz_one() {
  local target=$1 log="$out/fuzz-$1.log"
  if fuzz run "$target" "$corpus/$target" -- -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    echo "ok"
  else
    echo "crash"
  fi
}
results=()
targets=(request_bodies names token policies)
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  a=${targets[i]} b=${targets[i + 1]}
  fuzz_one "$a" >"$out/fuzz-$a.result" &
  fuzz_one "$b" >"$out/fuzz-$b.result" &
  wait
done
{
  echo "\`cargo fuzz run TARGET -- -max_total_time=$fuzz_seconds\` (AddressSanitizer), two targets at a time; seeds in \`scripts/reliability.sh\`."
  echo
  echo "| target | runs | seconds | result | goal |"
  echo "|---|---|---|---|---|"
  for t in "${targets[@]}"; do
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz-$t.log" | grep -o '[0-9]*$' || echo "?")
    result=$(cat "$out/fuzz-$t.result")
    goal="no crash"; [ "$mode" = full ] && goal="≥ 600 s, no crash"
    verdict=met; [ "$result" = ok ] || verdict="**missed**"
    echo "| \`$t\` | $runs | $fuzz_seconds | $result | $goal: $verdict |"
  done
} >"$out/fuzz.md"
cat "$out/fuzz.md"

echo "== load, faults, rate limit, schemathesis, secrets"
args=()
[ "$mode" = quick ] && args=(--quick)
PG_DURABLE=1 scripts/with-postgres cargo bench --locked --bench reliability -- "${args[@]}"
