#!/usr/bin/env bash
# Keyless signing at scale and the read reuse window (tests/api/keyless.rs,
# bench_keyless_and_reuse, run alone in release mode): IAM signBlob and the Cloud Storage JSON
# API faked on loopback with 50 ms per call and a quota of 1,000 signBlob calls a second (429
# past it). Measures a 10,000-item batch with signBlob (share of the quota, 429s), fast keyless
# (the service account's HMAC key) beside a key-file HMAC key, single-URL p50/p99 in each mode,
# signBlob calls saved by the reuse window on a Zipf(1.1) read workload (100,000 objects, 1,000
# users), and with an RSA key the CPU of a reuse hit against a miss and per request with the
# window and without. Needs DATABASE_URL or starts PostgreSQL (scripts/with-postgres). Writes
# the "Keyless signing and the read reuse window" section of BENCHMARKS.md and prints it.
#   bench/keyless.sh        # ~3 minutes; BENCH_ITEMS=10000 BENCH_ZIPF_REQUESTS=20000
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(scripts/with-postgres cargo nextest run --release --locked --run-ignored only --no-capture \
  -E 'test(bench_keyless_and_reuse)' 2>/dev/null | grep '^{"' | tail -n 1)
[ -n "$out" ] || { echo "keyless bench: no result line" >&2; exit 1; }
echo "$out" >&2
python3 - "$out" <<'PY'
import datetime, json, pathlib, platform, re, subprocess, sys
r = json.loads(sys.argv[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
b, z = r["signblob_batch"], r["rsa_zipf"]
w, o = z["window_60s"], z["window_off"]
c = r["rsa_signer_cpu_us"]
section = f"""## Keyless signing and the read reuse window

`bench/keyless.sh`, {datetime.date.today()}, {cpu}, {cores} cores. IAM `signBlob` and the JSON API
(`projects.hmacKeys`) are faked on loopback with 50 ms per call and a quota of 1,000 signBlob
calls per wall-clock second, 429 past it; the broker, its PostgreSQL, the fakes and the client
share the machine. Batches stream as NDJSON; every figure is through the HTTP API unless said.

| keyless signing | figure | goal |
|---|---|---|
| signBlob, {b['items']:,}-item batch | {b['seconds']:.1f} s, {b['per_second']:.0f} URLs/s = **{b['share_of_quota']*100:.0f}% of the quota**; first line after {b['first_line_seconds']:.2f} s | ≥ 90% |
| signBlob 429s: answered by the fake / reaching the client | {b['fake_429s']} / **{b['client_errors']}** (calls {b['calls']:,}, at most {b['most_in_flight']} in flight) | 0 reach clients |
| fast keyless (its HMAC key), {b['items']:,}-item batch, median of 3 | {r['fast_batch_per_second']:,.0f} URLs/s | |
| key-file HMAC key, same batches interleaved, median of 3 | {r['keyfile_hmac_batch_per_second']:,.0f} URLs/s | |
| fast keyless / key file | **{r['fast_vs_keyfile']*100:.0f}%** | ≥ 80% |
| single URL, signBlob: p50 / p99 | {r['signblob_single_ms']['p50']:.1f} / {r['signblob_single_ms']['p99']:.1f} ms | |
| single URL, fast keyless: p50 / p99 | {r['fast_single_ms']['p50']:.2f} / {r['fast_single_ms']['p99']:.2f} ms | |
| single URL, key-file HMAC: p50 / p99 | {r['keyfile_hmac_single_ms']['p50']:.2f} / {r['keyfile_hmac_single_ms']['p99']:.2f} ms | |
| signBlob with the 60 s window, Zipf reads ({r['signblob_zipf']['requests']:,} requests, {r['signblob_zipf']['per_second']:.0f}/s) | {r['signblob_zipf']['signblob_calls']:,} signBlob calls: **{r['signblob_zipf']['saved']*100:.0f}% saved** | |

| read reuse window, RSA key | window 60 s | window off |
|---|---|---|
| signer CPU per URL, median of 3 rounds (hit: 100,000 reuses; miss: 1,000 signatures) | hit **{c['hit']:.2f} µs** | miss {c['miss']:.0f} µs |
| hit / miss | **{c['ratio']*100:.2f}%** (goal ≤ 10%) | |
| Zipf(1.1) reads, 100,000 objects, 1,000 users, 16 at a time: requests | {w['requests']:,} | {o['requests']:,} |
| signatures made | {w['signatures']:,} (**{w['saved']*100:.0f}% saved**) | {o['signatures']:,} |
| requests/s | {w['per_second']:.0f} | {o['per_second']:.0f} |
| process CPU per request (broker + client in one process; PostgreSQL apart) | {w['cpu_us_per_request']:.0f} µs | {o['cpu_us_per_request']:.0f} µs |

The share saved depends on how many reads of one object fall in one window: here the whole
run spans a few windows; a gallery served all day saves in proportion to its request rate.
"""
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
pattern = re.compile(r"## Keyless signing and the read reuse window\n.*?(?=\n## |\Z)", re.S)
text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
path.write_text(text)
print(section)
PY
