#!/usr/bin/env bash
# Load figures of the example server (BENCHMARKS.md, "Server"): wrk on loopback
# against rustydb_server and a bare hyper hello-world built in the same run,
# alternating, then the server's RSS after ~100 k and ~1 M requests.
#
#   bash benches/server_load.sh            # ROUNDS=7 DUR=5 by default
#
# Needs wrk (apt-get install -y wrk). Prints BENCH lines (requests/s: higher is
# better, ratio = ours / hello) and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
DUR=${DUR:-5}
cargo build --release --all-features --example rustydb_server --example hyper_hello >&2
BIN=target/release/examples
DATA=$(mktemp -d)
ADMIN=bench-admin-token-0123456789
RO=bench-ro-token-0123456789
$BIN/rustydb_server --addr 127.0.0.1:18090 --data-dir "$DATA" --admin-token $ADMIN --readonly-token $RO --quiet &
SRV=$!
$BIN/hyper_hello 127.0.0.1:18091 2>/dev/null &
HEL=$!
trap 'kill $SRV $HEL 2>/dev/null; rm -rf "$DATA"' EXIT
sleep 1

# A 10 000-row table for the SQL point query (when the server has an engine).
SQL=0
if curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"sql":"CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT)"}' \
    http://127.0.0.1:18090/api/v1/query > /dev/null; then
    for b in $(seq 0 99); do
        vals=$(seq $((b * 100 + 1)) $((b * 100 + 100)) | awk '{printf "%s(%d, \x27name-%d\x27)", (NR > 1 ? ", " : ""), $1, $1}')
        curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
            -d "{\"sql\":\"INSERT INTO bench VALUES $vals\"}" http://127.0.0.1:18090/api/v1/query > /dev/null
    done
    SQL=1
fi
export RO_TOKEN=$RO

# "<requests/s> <p99 ms> <errors>"
run() {
    wrk -t2 -c64 -d"${DUR}s" --latency "$@" | awk '
        /Requests\/sec/ {r = $2}
        / 99%/ {p = $2; if (p ~ /us$/) {sub(/us/, "", p); p /= 1000} else if (p ~ /ms$/) {sub(/ms/, "", p)} else if (p ~ /s$/) {sub(/s/, "", p); p *= 1000}}
        /Non-2xx|Socket errors/ {e = e " " $0}
        END {print r, p, (e == "" ? "none" : e)}'
}
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

: > /tmp/server_load.$$
for i in $(seq 1 "$ROUNDS"); do
    echo "hello  $(run http://127.0.0.1:18091/)" | tee -a /tmp/server_load.$$ >&2
    echo "health $(run http://127.0.0.1:18090/api/v1/admin/health)" | tee -a /tmp/server_load.$$ >&2
    echo "point  $(run -H "Authorization: Bearer $RO" http://127.0.0.1:18090/api/v1/pools/default)" | tee -a /tmp/server_load.$$ >&2
    if [ $SQL = 1 ]; then
        echo "sql    $(run -s benches/server_point.lua http://127.0.0.1:18090)" | tee -a /tmp/server_load.$$ >&2
    fi
done
KINDS="hello health point"
[ $SQL = 1 ] && KINDS="$KINDS sql"
for k in $KINDS; do
    rps=$(awk -v k=$k '$1 == k {print $2}' /tmp/server_load.$$ | median)
    p99=$(awk -v k=$k '$1 == k {print $3}' /tmp/server_load.$$ | median)
    errs=$(awk -v k=$k '$1 == k && $4 != "none"' /tmp/server_load.$$ | wc -l)
    eval "${k}_rps=$rps; ${k}_p99=$p99; ${k}_err=$errs"
done
for k in ${KINDS#hello }; do
    eval "rps=\$${k}_rps; p99=\$${k}_p99; err=\$${k}_err"
    echo "BENCH server/$k ours=${rps}rps hello=${hello_rps}rps ratio=$(echo "$rps / $hello_rps" | bc -l | cut -c1-4) p99_ours=${p99}ms p99_hello=${hello_p99}ms runs_with_errors=$err"
done
rm -f /tmp/server_load.$$

# RSS after ~100 k and ~1 M requests on a fresh server on the same data dir
# (authenticated pool reads, health, and SQL point queries when there is an engine).
# RSS=0 stops after the throughput figures.
[ "${RSS:-1}" = 0 ] && exit 0
kill $SRV
wait $SRV 2>/dev/null || true
$BIN/rustydb_server --addr 127.0.0.1:18090 --data-dir "$DATA" --admin-token $ADMIN --readonly-token $RO --quiet &
SRV=$!
sleep 1
rss() { awk '/VmRSS/ {print $2 * 1024}' /proc/$SRV/status; }
total() {
    curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:18090/api/v1/metrics |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["metrics"]["total_requests"]["value"]))'
}
load() {
    wrk -t1 -c32 -d"$1" -H "Authorization: Bearer $RO" http://127.0.0.1:18090/api/v1/pools/default/stats > /dev/null &
    local w=$! q=
    if [ $SQL = 1 ]; then
        wrk -t1 -c8 -d"$1" -s benches/server_point.lua http://127.0.0.1:18090 > /dev/null &
        q=$!
    fi
    wrk -t1 -c16 -d"$1" http://127.0.0.1:18090/api/v1/admin/health > /dev/null
    wait $w $q
}
while [ "$(total)" -lt 100000 ]; do load 1s; done
n1=$(total); r1=$(rss)
while [ "$(total)" -lt 1000000 ]; do load 3s; done
n2=$(total); r2=$(rss)
fails=$(curl -s -H "Authorization: Bearer $ADMIN" http://127.0.0.1:18090/api/v1/metrics |
    python3 -c 'import json,sys; m=json.load(sys.stdin)["metrics"]; print(int(m["failed_requests"]["value"]))')
echo "BENCH server/rss_1m ours=${r2}B after_100k=${r1}B ratio=$(echo "$r2 / $r1" | bc -l | cut -c1-5) requests=$n1,$n2 failed_requests=$fails"
