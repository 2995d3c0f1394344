#!/usr/bin/env bash
# The dashboard's browser test: Debian's chromium (apt-get) driven by
# playwright-core (npm, pinned in tests/browser/package-lock.json) against a
# running example server under a small SQL and allocation load. Screenshots
# and a report land in target/browser/. Skips, with a message, only where
# chromium cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/browser
mkdir -p "$out"

if ! command -v chromium >/dev/null 2>&1; then
    (apt-get install -y chromium >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; }) || true
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "SKIP dashboard browser test: chromium could not be installed (apt-get install chromium)"
    exit 0
fi
if ! command -v node >/dev/null 2>&1; then
    echo "the dashboard browser test needs node and npm"
    exit 1
fi
# playwright-core from the registry, at the version the lockfile pins.
node_dir=target/browser-node
mkdir -p "$node_dir"
cp tests/browser/package.json tests/browser/package-lock.json "$node_dir/"
(cd "$node_dir" && npm ci --no-audit --no-fund --silent)
cp tests/browser/dashboard.mjs "$node_dir/"

cargo build --release --example rustydb_server
data=$(mktemp -d)
log="$data/server.log"
admin="browser-admin-token-0123456789"
ro="browser-readonly-token-0123456789"
rw="browser-readwrite-token-0123456789"
# The debugger tracks, so the page has live sites to list.
RUSTYDB_MEM_DEBUG=tracking target/release/examples/rustydb_server --addr 127.0.0.1:0 \
    --data-dir "$data/db" --admin-token "$admin" --readonly-token "$ro" --readwrite-token "$rw" \
    --memory-budget 1GiB --buffer-pool-pages 64 2>"$log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start"; cat "$log"; exit 1; }
# A few seconds of history before the page opens.
sleep 3
node "$node_dir/dashboard.mjs" "$url" "$ro" "$rw" "$admin" "$(pwd)/$out"
