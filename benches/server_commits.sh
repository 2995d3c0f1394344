#!/usr/bin/env bash
# Commit throughput of the example server with its write-ahead log (fsync on)
# beside SQLite in WAL mode with synchronous=FULL, doing the same one-row
# INSERT per transaction from 1, 8 and 64 concurrent clients, alternating
# in the same run (BENCHMARKS.md, "Server: durable commits").
#
#   bash benches/server_commits.sh            # ROUNDS=3 DUR=5 CLIENTS="1 8 64"
#
# Needs python3 (its sqlite3 module). Both sides write to the same file
# system (a fresh directory under $TMPDIR) and acknowledge a commit only once
# it is durable: the server after the log's fdatasync, SQLite after it syncs
# its WAL. The server's clients speak HTTP/JSON (one keep-alive connection
# each); SQLite's clients are in-process connections — that overhead counts
# against the server. Prints BENCH lines (commits/s: higher is better,
# ratio = ours / sqlite) with the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
CLIENTS=${CLIENTS:-"1 8 64"}
cargo build --release --example rustydb_server >&2
BIN=target/release/examples/rustydb_server
WORK=$(mktemp -d)
TOKEN=bench-admin-token-0123456789
PORT=18095
$BIN --addr 127.0.0.1:$PORT --data-dir "$WORK/rustydb" --admin-token $TOKEN --quiet &
SRV=$!
trap 'kill $SRV 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:$PORT/api/v1/admin/health > /dev/null && break
    sleep 0.1
done
curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"sql":"CREATE TABLE c (id INTEGER PRIMARY KEY, v TEXT)"}' \
    http://127.0.0.1:$PORT/api/v1/query > /dev/null

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
: > "$WORK/results"
id=1
for r in $(seq 1 "$ROUNDS"); do
    for c in $CLIENTS; do
        ours=$(python3 benches/commit_load.py rustydb $PORT $TOKEN "$c" "$DUR" $((id * 1000000000)))
        id=$((id + 1))
        lite=$(python3 benches/commit_load.py sqlite "$WORK/lite.db" "$c" "$DUR" $((id * 1000000000)))
        id=$((id + 1))
        echo "round $r clients $c ours ${ours% *} sqlite ${lite% *} (errors ${ours#* }) load $(cut -d' ' -f1 /proc/loadavg)" >&2
        echo "$c ${ours% *} ${lite% *} ${ours#* }" >> "$WORK/results"
    done
done
for c in $CLIENTS; do
    o=$(awk -v c="$c" '$1 == c {print $2}' "$WORK/results" | median)
    l=$(awk -v c="$c" '$1 == c {print $3}' "$WORK/results" | median)
    e=$(awk -v c="$c" '$1 == c {s += $4} END {print s + 0}' "$WORK/results")
    echo "BENCH server/commits_c$c ours=${o}commits/s sqlite_wal_full=${l}commits/s ratio=$(echo "$o / $l" | bc -l | cut -c1-5) errors=$e"
done
# The server's own count of log syncs: commits per fdatasync (group commit).
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v1/stats/performance |
    python3 -c 'import json,sys; l=json.load(sys.stdin)["log"]; print("server log: %d commits in %d syncs (%.1f commits per fdatasync)" % (l["commits"], l["syncs"], l["commits"] / max(1, l["syncs"])))' >&2
