#!/usr/bin/env bash
# schemathesis (PyPI, pinned in .ci/schemathesis-requirements.txt) over the
# OpenAPI document of a running example server: every operation, every check
# (`--checks all`), with an admin token. Fails on any failure. Run from
# anywhere: `bash .ci/schemathesis.sh [extra schemathesis flags]`.
#
# Needs python3 with venv; the virtualenv is kept in target/schemathesis-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/schemathesis-requirements.txt
fi
cargo build --release --example rustydb_server

data=$(mktemp -d)
log="$data/server.log"
token="schemathesis-admin-token-0123456789"
# A 1 GiB budget and a 64 MiB ballast cap: ballasts the fuzzer asks for stay
# far from the pressure levels that refuse work (a 503 fails the run).
target/release/examples/rustydb_server --addr 127.0.0.1:0 --data-dir "$data/db" \
    --admin-token "$token" --memory-budget 1GiB --max-ballast 64MiB \
    --buffer-pool-pages 256 2>"$log" &
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

mkdir -p target/schemathesis
"$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$url/api/v1/openapi.json" \
    --checks all -H "Authorization: Bearer $token" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --seed "${SCHEMATHESIS_SEED:-20}" \
    --generation-database none --no-color \
    --report junit --report-dir target/schemathesis "$@"
