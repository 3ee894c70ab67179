#!/usr/bin/env bash
# Measures S3 SigV4 and Azure SAS signing beside GCS V4 with an HMAC key, side by side in one
# criterion run (benches/backends.rs): one URL, the MAC alone (so the per-URL work beside it is
# the difference), and 10,000 URLs on all cores through the broker's batch path. Writes the
# "Signing per backend" section of BENCHMARKS.md and prints it.
#   bench/backends.sh       # ~2 minutes on the 2-core machine
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench --bench backends -- --noplot >&2

python3 - <<'PY'
import datetime, json, pathlib, platform, subprocess

def median_ns(path):
    doc = json.loads(pathlib.Path("target/criterion", path, "new/estimates.json").read_text())
    return doc["median"]["point_estimate"]

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
ok = lambda cond: "met" if cond else "**missed**"
rows = []
for name, label, mac in [("gcs_hmac", "GCS V4, HMAC key", None), ("s3", "S3 SigV4", "s3_mac"), ("azure", "Azure SAS (account key)", "azure_mac")]:
    one = median_ns(f"backend_one_url/{name}")
    batch = 10_000 / (median_ns(f"backend_batch_all_cores/{name}/10000") / 1e9)
    if mac:
        mac_ns = median_ns(f"backend_one_url/{mac}")
        beside = f"{(one - mac_ns) / 1000:,.2f} µs (MAC {mac_ns / 1000:,.2f} µs)"
        beside_ok = f"≤ 10 µs: {ok(one - mac_ns <= 10_000)}"
        batch_ok = f"≥ 200,000: {ok(batch >= 200_000)}"
    else:
        beside, beside_ok, batch_ok = "", "", "(reference)"
    rows.append((label, f"{one / 1000:,.2f} µs", beside, beside_ok, f"{batch:,.0f} URLs/s", batch_ok))
table = ["| backend | one URL (one core) | work beside the MAC | target | 10,000-URL batch, all cores | target |", "|---|---|---|---|---|---|"]
table += ["| " + " | ".join(r) + " |" for r in rows]
section = f"""<!-- backends:begin -->
## Signing per backend (issue 14)

Run `bench/backends.sh` on {datetime.date.today().isoformat()}: {cpu}, {cores} cores, {int(mem) // 1024 // 1024} GiB.
Criterion medians (`benches/backends.rs`), all backends in one run. The batch goes through `Signers::sign_all`, the
path batches and manifests take; "work beside the MAC" is one URL minus the MAC alone (S3: the day key's four HMACs
and the signature's; Azure: one HMAC of the string-to-sign).

{chr(10).join(table)}
<!-- backends:end -->"""
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
if "<!-- backends:begin -->" in text:
    head, rest = text.split("<!-- backends:begin -->", 1)
    text = head + section + rest.split("<!-- backends:end -->", 1)[1]
else:
    head, rest = text.split("<!-- signing:end -->", 1)
    text = head + "<!-- signing:end -->\n\n" + section + rest
path.write_text(text)
print(section)
PY
