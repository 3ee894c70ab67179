#!/usr/bin/env bash
# examples/browser-upload (on clients/js) in a real browser, on each storage backend the broker fronts:
#   gcs    `storage-broker dev` runs fake-gcs-server (with CORS and its proxy for resumable
#          starts) itself;
#   s3     SeaweedFS (one identity, so that it checks every signature), the bucket given a CORS
#          rule as the README asks of S3, and `dev --backend s3 --storage-endpoint …`;
#   azure  Azurite in memory, its Blob service given a CORS rule as the README asks of Azure, and
#          `dev --backend azure --storage-endpoint …`.
# Each with CORS for the page's origin in the broker, the page served on loopback, and
# scripts/e2e/browser.mjs driving headless Chromium. Installs what it needs: Debian's chromium
# when missing and running as root, playwright-core from npm into target/tools/e2e,
# fake-gcs-server, SeaweedFS and Azurite (scripts/fake-gcs-server, scripts/seaweedfs,
# scripts/azurite; or FAKE_GCS_SERVER, SEAWEEDFS, AZURITE). E2E_BACKENDS="s3 azure" runs a part.
# On s3, scripts/e2e/cache.mjs also shows the read reuse window in the browser's cache.
# Exit 0 only when every upload, download and message held on every backend.
# Screenshots: target/e2e/browser-upload.png (gcs), browser-upload-s3.png, browser-upload-azure.png.
# The phase `console` runs the console's suite (scripts/e2e/console.mjs) against `storage-broker
# dev`, with axe-core from npm; its screenshots go to target/e2e/console/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
backends=${E2E_BACKENDS:-gcs s3 azure console}

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
if [ ! -d "$tools/node_modules/playwright-core" ] || [ ! -d "$tools/node_modules/axe-core" ]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent playwright-core@1.65.1 axe-core@4.14.1 >&2
fi
case " $backends " in *" gcs "*|*" console "*) fake_gcs=${FAKE_GCS_SERVER:-$(scripts/fake-gcs-server)} ;; esac
case " $backends " in *" s3 "*) weed=${SEAWEEDFS:-$(scripts/seaweedfs)} ;; esac
case " $backends " in *" azure "*) azurite=${AZURITE:-$(scripts/azurite)} ;; esac
# The page runs on clients/js: its build.
if [ ! -f clients/js/node_modules/.package-lock.json ] || [ clients/js/package-lock.json -nt clients/js/node_modules/.package-lock.json ]; then
  npm ci --prefix clients/js --no-audit --no-fund --silent >&2
fi
npm run --prefix clients/js --silent build >&2
cargo build --locked --quiet --bin storage-broker
broker_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/storage-broker"

# shellcheck source=scripts/lib/stack.sh
source scripts/lib/stack.sh

work=$(mktemp -d)
page_port=$(free_port)
origin="http://127.0.0.1:$page_port"
# From the repository's root: the page imports the client from clients/js/dist.
python3 -m http.server "$page_port" --bind 127.0.0.1 --directory . >/dev/null 2>&1 &
page_pid=$!
phase_pid=""
cleanup() {
  [ -n "$phase_pid" ] && { kill "$phase_pid" 2>/dev/null || true; wait "$phase_pid" 2>/dev/null || true; }
  kill "$page_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
page="$origin/examples/browser-upload/index.html"
await_http "$page" 60 ok "$page_pid" || { echo "e2e-browser: the page server did not start" >&2; exit 1; }

# The shipped policies with limits a browser test can reach (64 MiB; images, text and
# octet-streams), every class on `backend` ($1: gcs as shipped, else a backend "dev" at endpoint
# $3 whose credentials come from the environment), written to $2.
write_policies() {
  mkdir -p "$2"
  cp policies/roles.toml "$2/"
  python3 - policies/classes.toml "$2/classes.toml" "$1" "${3:-}" <<'PY'
import re, sys
source, out, backend, endpoint = sys.argv[1:]
head, *classes = re.split(r"(?m)^(?=\[classes\.)", open(source).read())
assert classes[0].startswith("[classes.personal]"), classes[0][:40]
personal = re.sub(r"(?m)^max_object_size = .*$", "max_object_size = 67108864", classes[0], count=1)
personal = re.sub(r"(?m)^content_types = .*$", 'content_types = ["image/*", "text/*", "application/octet-stream"]', personal, count=1)
assert "67108864" in personal and "image/*" in personal
classes[0] = personal
if backend != "gcs":
    # As `dev --backend` writes them when it writes the policies itself (src/cli/dev/backend.rs);
    # with BROKER_POLICIES_DIR it takes them as they are, so they say all of it.
    for i, section in enumerate(classes):
        section = section.replace("\nbackend_bucket =", '\nbackend = "dev"\nbackend_bucket =', 1)
        # An Azure SAS binds neither size nor content type: such class limits are advice only.
        types = re.search(r"(?m)^content_types = \[(.*)\]", section)
        limited = "\nmax_object_size" in section or (types and types.group(1).strip() != '"*/*"')
        if backend == "azure" and limited:
            section = section.replace("\nprefix =", "\nadvisory_limits = true\nprefix =", 1)
        classes[i] = section
    if backend == "s3":
        classes.append(f'\n[backends.dev]\nkind = "s3"\nregion = "us-east-1"\nendpoint = "{endpoint}"\nurl_style = "path"\ncredentials = "env"\n')
    else:
        classes.append(f'\n[backends.dev]\nkind = "azure"\naccount = "devstoreaccount1"\nendpoint = "{endpoint}"\ncredentials = "env"\n')
open(out, "w").write(head + "".join(classes))
PY
  "$broker_bin" policy check "$2" >/dev/null
}

# One backend: its emulator, its broker, the browser run. Runs in a subshell of its own (see
# below), whose exit stops what it started (`pids`: not local, or the EXIT trap, which runs
# after the function has returned, would see none).
phase() {
  local backend=$1 dir="$work/$1" storage="" args=() env=()
  pids=()
  mkdir -p "$dir"
  trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
  trap 'exit 143' TERM INT
  if [ "$backend" = console ]; then
    # The console (served by the broker, same origin: no CORS) on `dev`'s own GCS emulator.
    local port
    port=$(free_port)
    env -u DATABASE_URL -u BROKER_STORAGE_ENDPOINT -u BROKER_POLICIES_DIR -u BROKER_CORS_ORIGINS \
      BROKER_LISTEN="127.0.0.1:$port" BROKER_LOG=warn FAKE_GCS_SERVER="$fake_gcs" \
      "$broker_bin" dev >"$dir/dev.log" 2>&1 &
    pids+=($!)
    await_http "http://127.0.0.1:$port/readyz" 180 ok "$!" \
      || { cat "$dir/dev.log" >&2; echo "e2e-browser: the console's dev stack did not start" >&2; return 1; }
    # It prints the console's address with the rest of its banner, just after it starts serving.
    local printed=""
    for _ in $(seq 150); do
      grep -q "console   http://127.0.0.1:$port/console/" "$dir/dev.log" && { printed=yes; break; }
      sleep 0.2
    done
    [ -n "$printed" ] || { cat "$dir/dev.log" >&2; echo "e2e-browser: storage-broker dev did not print the console's address" >&2; return 1; }
    rm -rf target/e2e/console
    E2E_TOOLS="$tools" CHROMIUM="$chromium" node scripts/e2e/console.mjs "http://127.0.0.1:$port" "$PWD/target/e2e/console"
    return 0
  fi
  case "$backend" in
    gcs)
      env=(FAKE_GCS_SERVER="$fake_gcs")
      ;;
    s3)
      # SeaweedFS lets every origin in unless told otherwise (-s3.allowedOrigins defaults to
      # "*"); S3 lets none in until the bucket has a CORS rule. Here only the page's origin is
      # let in by default, and the bucket's own rule (storage_cors.py, which checks that it is
      # the rule answering) governs every request to the bucket's objects. The default is still
      # needed: SeaweedFS (4.48) answers a preflight to /BUCKET without a trailing slash, where a
      # path-style form POST goes, from -s3.allowedOrigins and not from the bucket's rule, and
      # for an origin not in that list it drops the connection (a panic) instead of a 403.
      start_seaweedfs "$weed" "$dir" "$origin"
      python3 scripts/e2e/storage_cors.py s3 "$storage" storage-broker-data "$origin" "$s3_key_id" "$s3_secret"
      env=(AWS_ACCESS_KEY_ID="$s3_key_id" AWS_SECRET_ACCESS_KEY="$s3_secret")
      ;;
    azure)
      start_azurite "$azurite" "$dir"
      python3 scripts/e2e/storage_cors.py azure "$storage" "$origin"
      env=(AZURE_STORAGE_KEY="$azurite_key")
      ;;
  esac
  write_policies "$backend" "$dir/policies" "$storage"
  [ "$backend" = gcs ] || args=(--backend "$backend" --storage-endpoint "$storage")
  local broker_port
  broker_port=$(free_port)
  env -u DATABASE_URL -u BROKER_STORAGE_ENDPOINT -u AWS_SESSION_TOKEN BROKER_LISTEN="127.0.0.1:$broker_port" \
    BROKER_CORS_ORIGINS="$origin" BROKER_POLICIES_DIR="$dir/policies" BROKER_LOG=warn "${env[@]}" \
    "$broker_bin" dev "${args[@]}" >"$dir/dev.log" 2>&1 &
  pids+=($!)
  await_http "http://127.0.0.1:$broker_port/readyz" 180 ok "$!" \
    || { cat "$dir/dev.log" >&2; echo "e2e-browser: the $backend dev stack did not start" >&2; return 1; }

  local screenshot="$PWD/target/e2e/browser-upload.png"
  [ "$backend" = gcs ] || screenshot="$PWD/target/e2e/browser-upload-$backend.png"
  E2E_TOOLS="$tools" CHROMIUM="$chromium" node scripts/e2e/browser.mjs \
    "$page" "http://127.0.0.1:$broker_port" "$screenshot" "$backend"

  # The read reuse window in the browser's cache, counted where storage is reached: a second
  # broker signs for a counting proxy in front of SeaweedFS (scripts/e2e/cache.mjs).
  if [ "$backend" = s3 ]; then
    local proxy_port cache_port
    proxy_port=$(free_port)
    python3 scripts/e2e/counting_proxy.py "$proxy_port" "$storage" >"$dir/proxy.log" 2>&1 &
    pids+=($!)
    await_http "http://127.0.0.1:$proxy_port/__count" 30 ok "$!" \
      || { cat "$dir/proxy.log" >&2; echo "e2e-browser: the counting proxy did not start" >&2; return 1; }
    write_policies s3 "$dir/cache-policies" "http://127.0.0.1:$proxy_port"
    cache_port=$(free_port)
    env -u DATABASE_URL -u BROKER_STORAGE_ENDPOINT -u AWS_SESSION_TOKEN BROKER_LISTEN="127.0.0.1:$cache_port" \
      BROKER_POLICIES_DIR="$dir/cache-policies" BROKER_LOG=warn "${env[@]}" \
      "$broker_bin" dev --backend s3 --storage-endpoint "http://127.0.0.1:$proxy_port" >"$dir/cache-dev.log" 2>&1 &
    pids+=($!)
    await_http "http://127.0.0.1:$cache_port/readyz" 180 ok "$!" \
      || { cat "$dir/cache-dev.log" >&2; echo "e2e-browser: the cache test's broker did not start" >&2; return 1; }
    E2E_TOOLS="$tools" CHROMIUM="$chromium" node scripts/e2e/cache.mjs \
      "http://127.0.0.1:$cache_port" "http://127.0.0.1:$proxy_port"
  fi
}

mkdir -p target/e2e
failed=()
for backend in $backends; do
  echo "== $backend"
  # In a background subshell, so that `set -e` holds inside it (it is off in a function whose
  # status is tested) and its EXIT trap stops its emulator and broker whatever happens.
  phase "$backend" &
  phase_pid=$!
  wait "$phase_pid" || failed+=("$backend")
  phase_pid=""
done
echo "e2e-browser: $(( $(date +%s) - started )) s for $backends"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "e2e-browser: FAILED on ${failed[*]}" >&2
  exit 1
fi
