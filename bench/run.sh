#!/usr/bin/env bash
# Measures V4 signing side by side in one run: storage-broker's criterion benches (benches/signing.rs),
# `openssl speed rsa2048` on 1 and 2 cores (before and after, medians), and python
# google-cloud-storage's generate_signed_url(version="v4") in a throwaway venv. Writes the
# "Signing" section of BENCHMARKS.md and prints it.
#   bench/run.sh            # full run, ~4 minutes on the 2-core machine
set -euo pipefail
cd "$(dirname "$0")/.."

openssl_rates() { # -> "single multi" sign/s
  local single multi
  single=$(openssl speed -mr -seconds 3 rsa2048 2>/dev/null | awk -F: '/^\+F2:/ {print $4}')
  multi=$(openssl speed -mr -seconds 3 -multi "$(nproc)" rsa2048 2>/dev/null | awk -F: '/^\+F2:/ {print $4}')
  echo "$single $multi"
}

echo "== openssl speed (before)" >&2
before=()
for _ in 1 2; do before+=("$(openssl_rates)"); done

echo "== python google-cloud-storage" >&2
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet google-cloud-storage cryptography
python_json=$("$venv/bin/python" bench/python_sign_rate.py tests/fixtures/test-service-account.json)
python_version=$("$venv/bin/pip" show google-cloud-storage | awk '/^Version:/ {print $2}')

echo "== cargo bench --bench signing" >&2
cargo bench --bench signing -- --noplot >&2

echo "== openssl speed (after)" >&2
after=()
for _ in 1 2; do after+=("$(openssl_rates)"); done

python3 - "$python_json" "$python_version" "${before[@]}" "${after[@]}" <<'PY'
import json, pathlib, platform, statistics, subprocess, sys, datetime

python = json.loads(sys.argv[1])
python_version = sys.argv[2]
openssl = [tuple(map(float, run.split())) for run in sys.argv[3:]]
ossl1 = statistics.median(r[0] for r in openssl)
ossl2 = statistics.median(r[1] for r in openssl)

def median_ns(path):
    doc = json.loads(pathlib.Path("target/criterion", path, "new/estimates.json").read_text())
    return doc["median"]["point_estimate"]

rsa_one = median_ns("one_url/rsa")
hmac_one = median_ns("one_url/hmac")
beside = median_ns("one_url/work_beside_rsa")
primitive = median_ns("one_url/rsa_primitive")
rsa_batch = 10_000 / (median_ns("batch_all_cores/rsa/10000") / 1e9)
hmac_batch = 10_000 / (median_ns("batch_all_cores/hmac/10000") / 1e9)
py = python["median_urls_per_s"]

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
ossl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
ok = lambda cond: "met" if cond else "**missed**"
rows = [
    ("RSA-2048 batch, 10,000 URLs on all cores", f"{rsa_batch:,.0f} URLs/s", f"openssl speed -multi {cores}: {ossl2:,.0f} sign/s",
     f"{rsa_batch / ossl2:.0%}", f"≥ 90%: {ok(rsa_batch >= 0.9 * ossl2)}"),
    ("RSA-2048, one URL (one core)", f"{rsa_one / 1000:,.1f} µs = {1e9 / rsa_one:,.0f} URLs/s", f"openssl speed (1 core): {ossl1:,.0f} sign/s",
     f"{1e9 / rsa_one / ossl1:.0%}", ""),
    ("RSA-2048 primitive alone (aws-lc-rs)", f"{primitive / 1000:,.1f} µs", "", "", ""),
    ("per-URL work beside the RSA signature", f"{beside / 1000:,.2f} µs", "", "", f"≤ 10 µs: {ok(beside <= 10_000)}"),
    ("HMAC batch, 10,000 URLs on all cores", f"{hmac_batch:,.0f} URLs/s", "", "", f"≥ 200,000: {ok(hmac_batch >= 200_000)}"),
    ("HMAC, one URL (one core)", f"{hmac_one / 1000:,.2f} µs = {1e9 / hmac_one:,.0f} URLs/s", "", "", ""),
    ("RSA-2048, one URL, one process: python google-cloud-storage", f"{1e9 / rsa_one:,.0f} URLs/s (storage-broker)",
     f"python-storage {python_version}: {py:,.0f} URLs/s", f"{1e9 / rsa_one / py:.1f}×", ""),
]
table = ["| measure | storage-broker | reference, same run | ratio | target |", "|---|---|---|---|---|"]
table += ["| " + " | ".join(r) + " |" for r in rows]
section = f"""<!-- signing:begin -->
## Signing (issue 2)

Run `bench/run.sh` on {datetime.date.today().isoformat()}: {cpu}, {cores} cores, {int(mem) // 1024 // 1024} GiB, {ossl_version}.
Medians: criterion's median for storage-broker (`benches/signing.rs`); the median of 4 `openssl speed -seconds 3 rsa2048`
runs (2 before, 2 after the benches); the median of 5 rounds of 2,000 URLs for python.

{chr(10).join(table)}
<!-- signing:end -->"""
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text() if path.exists() else "# Benchmarks\n\nLatest figures, each with the machine, the date and the command that made them.\n\n"
if "<!-- signing:begin -->" in text:
    head, rest = text.split("<!-- signing:begin -->", 1)
    text = head + section + rest.split("<!-- signing:end -->", 1)[1]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
path.write_text(text)
print(section)
PY
