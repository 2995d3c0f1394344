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

admin="browser-admin-token-0123456789"
ro="browser-readonly-token-0123456789"
rw="browser-readwrite-token-0123456789"
# The debugger tracks, so the page has live sites to list.
server_env=(RUSTYDB_MEM_DEBUG=tracking)
server_args=(--admin-token "$admin" --readonly-token "$ro" --readwrite-token "$rw"
    --memory-budget 1GiB --buffer-pool-pages 64)
source .ci/server_start.sh
# A few seconds of history before the page opens.
sleep 3
node "$node_dir/dashboard.mjs" "$url" "$ro" "$rw" "$admin" "$(pwd)/$out"
