# Sourced by .ci/browser.sh and .ci/schemathesis.sh: builds the example server
# (with `--all-features`, as the test step did, so nothing is rebuilt), starts
# it on a free port with a fresh data directory and the flags in
# `server_args`, stops it and removes the directory on exit, and sets `url`,
# `pid`, `data` and `log`.
#
#   server_env=(RUSTYDB_MEM_DEBUG=tracking)   # optional
#   server_args=(--admin-token ... --buffer-pool-pages 64)
#   source .ci/server_start.sh
cargo build --release --all-features --example rustydb_server
data=$(mktemp -d)
log="$data/server.log"
env "${server_env[@]}" target/release/examples/rustydb_server --addr 127.0.0.1:0 \
    --data-dir "$data/db" "${server_args[@]}" 2>"$log" &
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
