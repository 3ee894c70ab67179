# Sourced by the scripts that run a broker against storage emulators (scripts/e2e-browser.sh,
# scripts/test-clients): free ports, waiting for a server, and starting SeaweedFS or Azurite on
# loopback. Each start appends its process to the caller's `pids` array and sets `storage` to
# the emulator's endpoint.

# The S3 identity SeaweedFS checks signatures with (a broker signs with it: credentials = "env").
s3_key_id=AKIDE2EBROWSER s3_secret=e2e-browser-secret-0123456789
# Azurite's well-known key (public: in Microsoft's documentation).
azurite_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# N free ports whose port + 10000 is free too: weed listens there as well (gRPC).
weed_ports() {
  python3 - "$1" <<'PY'
import socket, sys
found = []
while len(found) < int(sys.argv[1]):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    if not 1024 <= port < 55535 or port in found:
        continue
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", port + 10000)); found.append(port)
    except OSError:
        pass
    finally:
        t.close()
print(" ".join(map(str, found)))
PY
}

# Waits up to $2 seconds for URL $1 to answer (any HTTP status with $3 = any, else a 2xx) while
# process $4 lives. Polling against a deadline: a busy machine only makes it take longer.
await_http() {
  local url=$1 any=$3 pid=$4 deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if [ "$any" = any ]; then
      curl -s -o /dev/null --max-time 5 "$url" && return 0
    else
      curl -sf -o /dev/null --max-time 5 "$url" && return 0
    fi
    sleep 0.2
  done
  return 1
}

# SeaweedFS (`weed` at $1) in directory $2 with one identity (so that it checks every signature);
# $3: the origins its S3 gateway lets in by default ("*" when empty).
start_seaweedfs() {
  local weed=$1 dir=$2 origins=${3:-*} master volume filer s3 admin
  storage=""
  mkdir -p "$dir/weed"
  printf '{"identities":[{"name":"e2e","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' \
    "$s3_key_id" "$s3_secret" >"$dir/weed/s3.json"
  for _ in 1 2 3; do
    read -r master volume filer s3 admin <<<"$(weed_ports 5)"
    rm -rf "$dir/weed/data" && mkdir "$dir/weed/data"
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$weed" mini -dir="$dir/weed/data" \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$master" -volume.port="$volume" \
      -filer.port="$filer" -s3.port="$s3" -admin.port="$admin" -s3.port.iceberg=0 \
      -s3.port.lance=0 -webdav=false -admin.ui=false -master.telemetry=false \
      -master.volumeSizeLimitMB=64 -volume.max=1000 -s3.config="$dir/weed/s3.json" \
      -s3.allowedOrigins="$origins" \
      -s3.localSocket="$dir/weed/s3.sock" -filer.localSocket="$dir/weed/filer.sock" \
      >"$dir/weed.log" 2>&1 &
    pids+=($!)
    # A port taken in the meantime makes weed exit at once: start again on others.
    if await_http "http://127.0.0.1:$s3/status" 120 ok "$!"; then storage="http://127.0.0.1:$s3"; return 0; fi
    kill "$!" 2>/dev/null || true
  done
  tail -n 30 "$dir/weed.log" >&2
  echo "SeaweedFS did not start" >&2
  return 1
}

# Azurite's Blob service (`azurite-blob` at $1) in memory, in directory $2.
start_azurite() {
  local azurite=$1 dir=$2 port
  storage=""
  mkdir -p "$dir"
  for _ in 1 2 3; do
    port=$(free_port)
    (cd "$dir" && exec "$azurite" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
      --silent --disableTelemetry --extentMemoryLimit 512) >"$dir/azurite.log" 2>&1 &
    pids+=($!)
    if await_http "http://127.0.0.1:$port/devstoreaccount1" 120 any "$!"; then storage="http://127.0.0.1:$port/devstoreaccount1"; return 0; fi
    kill "$!" 2>/dev/null || true
  done
  tail -n 30 "$dir/azurite.log" >&2
  echo "Azurite did not start" >&2
  return 1
}
