#!/usr/bin/env bash
# Instructions per request (callgrind: independent of the machine's load) of
# the example server's SQL point query and of examples/hyper_hello, the bare
# hyper hello-world the throughput figures in BENCHMARKS.md ("Server") compare
# with. Each server runs under callgrind; after a warm-up the counters are
# zeroed, N requests are sent over one keep-alive connection, and the dump's
# total over all threads is divided by N.
#
#   bash benches/server_point_ir.sh            # N=2000, IDS=10000, WARM=IDS
#
# Row ids cycle through 1..IDS as in benches/server_point.lua; the warm-up
# covers every id once, so the measured requests run at the steady state a
# wrk run reaches (every statement text in the server's prepared-statement
# cache). `WARM=0` measures first-time statements instead (parse and plan).
#
# Needs valgrind (callgrind_control) and python3. The table (10 000 rows, as in
# benches/server_load.sh) is loaded by a natively running server first, so
# only the measured requests run under the instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
IDS=${IDS:-10000}
WARM=${WARM:-$IDS}
cargo build --release --all-features --example rustydb_server --example hyper_hello >&2
BIN=target/release/examples
DATA=$(mktemp -d)
OUT=$(mktemp -d)
ADMIN=bench-admin-token-0123456789
RO=bench-ro-token-0123456789
PORT=18190
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DATA" "$OUT"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 600); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "nothing listens on $1" >&2
    return 1
}

# Load the table natively.
$BIN/rustydb_server --addr 127.0.0.1:$PORT --data-dir "$DATA" --admin-token $ADMIN \
    --readonly-token $RO --quiet &
srv=$!
pids=("$srv")
wait_port $PORT
python3 - "$PORT" "$ADMIN" <<'PY'
import http.client, json, sys
port, admin = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
def q(sql):
    c.request("POST", "/api/v1/query", json.dumps({"sql": sql}),
              {"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
    r = c.getresponse(); body = r.read()
    if r.status != 200: sys.exit(f"{r.status} {body[:200]!r}")
q("CREATE TABLE bench (id INTEGER PRIMARY KEY, name TEXT)")
for b in range(100):
    q("INSERT INTO bench VALUES " + ", ".join(f"({i}, 'name-{i}')" for i in range(b * 100 + 1, b * 100 + 101)))
PY
kill "$srv"
wait "$srv" 2>/dev/null || true
pids=()

# measure <name> <path> <token or -> <sql or -> <command...>
measure() {
    local name=$1 path=$2 token=$3 sql=$4
    shift 4
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.%p" "$@" 2>"$OUT/$name.log" &
    local pid=$!
    pids+=("$pid")
    wait_port $PORT
    python3 - "$PORT" "$path" "$token" "$sql" "$WARM" "$N" "$pid" "$IDS" <<'PY'
import http.client, json, subprocess, sys
port, path, token, sql, warm, n, pid, ids = sys.argv[1:]
port, warm, n, ids = int(port), int(warm), int(n), int(ids)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
headers = {"Content-Type": "application/json"}
if token != "-": headers["Authorization"] = "Bearer " + token
def one(i):
    if sql == "-":
        c.request("GET", path, headers=headers)
    else:
        c.request("POST", path, json.dumps({"sql": sql % (i % ids + 1)}), headers)
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{r.status} on {path}")
for i in range(warm): one(i)
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
for i in range(n): one(warm + i)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pids=()
    # The dump callgrind_control asked for (file name ends in .<pid>.1).
    local total
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$name.$pid.1")
    echo "$name $total"
}

hello=$(measure hello / - - $BIN/hyper_hello 127.0.0.1:$PORT)
point=$(measure sql_point /api/v1/query $RO "SELECT id, name FROM bench WHERE id = %d" \
    $BIN/rustydb_server --addr 127.0.0.1:$PORT --data-dir "$DATA" --admin-token $ADMIN \
    --readonly-token $RO --quiet)
h=${hello#* }
p=${point#* }
echo "BENCH server_ir/hello ir_per_request=$((h / N)) requests=$N"
echo "BENCH server_ir/sql_point ir_per_request=$((p / N)) requests=$N ids=$IDS warm=$WARM ratio_to_hello=$(echo "$p / $h" | bc -l | cut -c1-5)"
