#!/usr/bin/env bash
# Measures POST /v1/credentials against SeaweedFS's STS on loopback: p50/p99 with the vend
# cache hit (an identical vend reused) and missed (an STS AssumeRole round trip), interleaved in
# one run (tests/api/credentials.rs, bench_credentials_cache_hit_and_miss, run alone in release
# mode). Needs DATABASE_URL or starts PostgreSQL (scripts/with-postgres). Writes the
# "Vended credentials" section of BENCHMARKS.md and prints it.
#   bench/credentials.sh        # ~1 minute; BENCH_ROUNDS=200 by default
set -euo pipefail
cd "$(dirname "$0")/.."
export SEAWEEDFS="${SEAWEEDFS:-$(scripts/seaweedfs)}"
export BENCH_ROUNDS="${BENCH_ROUNDS:-200}"
out=$(scripts/with-postgres cargo nextest run --release --locked --run-ignored only --no-capture \
  -E 'test(bench_credentials_cache_hit_and_miss)' 2>/dev/null | grep '^{"' | tail -n 1)
[ -n "$out" ] || { echo "credentials bench: no result line" >&2; exit 1; }
python3 - "$out" <<'PY'
import datetime, json, pathlib, platform, re, subprocess, sys
r = json.loads(sys.argv[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = f"""## Vended credentials

`bench/credentials.sh`, {datetime.date.today()}, {cpu}, {cores} cores; {r['rounds']} rounds, a miss and
a hit interleaved in each, `POST /v1/credentials` over loopback HTTP (token verification,
authorization, audit commit included) against SeaweedFS 4.48's STS:

| | p50 | p99 |
|---|---|---|
| cache hit (identical vend reused) | {r['hit_p50_ms']:.2f} ms | {r['hit_p99_ms']:.2f} ms |
| cache miss (STS AssumeRole) | {r['miss_p50_ms']:.2f} ms | {r['miss_p99_ms']:.2f} ms |

A hit is {r['miss_p50_ms'] / r['hit_p50_ms']:.1f}× faster at the median; a storm of identical requests makes one STS call.
"""
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
text = re.sub(r"\n## Vended credentials\n.*?(?=\n## |\Z)", "", text, flags=re.S)
path.write_text(text.rstrip("\n") + "\n\n" + section)
print(section)
PY
