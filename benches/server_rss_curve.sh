#!/usr/bin/env bash
# RSS of the example server over millions of requests (BENCHMARKS.md, "Server"):
# a 10 000-row table, then pool reads + health + SQL point queries with wrk; at
# each checkpoint prints requests, VmRSS, threads and the allocator figures of
# /api/v1/memory/stats.   bash benches/server_rss_curve.sh   (needs wrk, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --all-features --example rustydb_server >&2
BIN=target/release/examples
DATA=$(mktemp -d)
ADMIN=bench-admin-token-0123456789; RO=bench-ro-token-0123456789; export RO_TOKEN=$RO
$BIN/rustydb_server --addr 127.0.0.1:18097 --data-dir "$DATA" --admin-token $ADMIN --readonly-token $RO --quiet &
SRV=$!
trap 'kill $SRV; rm -rf $DATA' EXIT
sleep 1
curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d '{"sql":"CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT)"}' http://127.0.0.1:18097/api/v1/query >/dev/null
for b in $(seq 0 99); do
  vals=$(seq $((b*100+1)) $((b*100+100)) | awk '{printf "%s(%d, \x27name-%d\x27)", (NR>1?", ":""), $1, $1}')
  curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "{\"sql\":\"INSERT INTO bench VALUES $vals\"}" http://127.0.0.1:18097/api/v1/query >/dev/null
done
total() { curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:18097/api/v1/metrics | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["metrics"]["total_requests"]["value"]))'; }
rss() { awk '/VmRSS/ {print $2}' /proc/$SRV/status; }
for target in ${CHECKPOINTS:-100000 600000 1200000 1800000 3000000}; do
  while [ "$(total)" -lt $target ]; do
    wrk -t1 -c32 -d2s -H "Authorization: Bearer $RO" http://127.0.0.1:18097/api/v1/pools/default/stats >/dev/null &
    w=$!
    wrk -t1 -c8 -d2s -s benches/server_point.lua http://127.0.0.1:18097 >/dev/null &
    q=$!
    wrk -t1 -c16 -d2s http://127.0.0.1:18097/api/v1/admin/health >/dev/null
    wait $w $q
  done
  echo "requests=$(total) rss_kib=$(rss) threads=$(awk "/Threads/ {print \$2}" /proc/$SRV/status) $(curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:18097/api/v1/memory/stats | python3 -c "import json,sys; d=json.load(sys.stdin); print({k: v for k, v in d.items() if not isinstance(v, (dict, list))})" | cut -c1-300)"
done
