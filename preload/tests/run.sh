#!/usr/bin/env bash
# The C ABI tests of librustydb_malloc (CI runs this from .ci/run):
#   1. builds the library (preload/target) and installs it with its header and
#      pkg-config file into a scratch prefix;
#   2. abi.c — every exported function and its edge cases — linked through
#      `pkg-config --libs rustydb-malloc`, and unlinked under LD_PRELOAD;
#   3. threads.c — threads trading blocks, thread exit, fork — the same two
#      ways, and once more with keys.so preloaded as well (the program's
#      pthread key becomes a second-level one, whose calloc nests the
#      allocator's thread registration);
#   4. programs people run, under LD_PRELOAD: Python (threads, fork,
#      sqlite3, json) and the sqlite3 shell, with output compared to glibc's.
# Needs gcc, pkg-config, python3 and sqlite3 (Debian: build-essential
# pkg-config python3 sqlite3).
set -euo pipefail
for tool in gcc pkg-config python3 sqlite3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get install -y -qq build-essential pkg-config python3 sqlite3 >/dev/null
        break
    fi
done
here="$(cd "$(dirname "$0")" && pwd)"
preload="$(dirname "$here")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
start=$(date +%s)
step() { echo "--- $* ($(( $(date +%s) - start ))s)"; }

step "build and install into a scratch prefix"
bash "$preload/install.sh" "$scratch/prefix" >/dev/null
lib="$scratch/prefix/lib/librustydb_malloc.so"
export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig"
flags="$(pkg-config --cflags --libs rustydb-malloc)"
cc="${CC:-gcc} -O2 -Wall -Wextra -Wno-use-after-free -Wno-alloc-size-larger-than -Wno-free-nonheap-object"

step "compile the tests"
# shellcheck disable=SC2086
$cc "$here/abi.c" -o "$scratch/abi_linked" $flags -ldl
$cc -I"$scratch/prefix/include" "$here/abi.c" -o "$scratch/abi" -ldl
# shellcheck disable=SC2086
$cc "$here/threads.c" -o "$scratch/threads_linked" $flags -pthread -ldl
$cc "$here/threads.c" -o "$scratch/threads" -pthread -ldl
$cc -shared -fPIC "$here/keys.c" -o "$scratch/keys.so"
# Captured, then matched: `ldd | grep -q` under pipefail fails when grep exits
# at its first match and ldd dies of SIGPIPE (exit 141).
linked="$(ldd "$scratch/abi_linked")"
case "$linked" in
    *librustydb_malloc*) ;;
    *) echo "abi_linked does not link the library:"; echo "$linked"; exit 1 ;;
esac

step "abi, linked"
"$scratch/abi_linked"
step "abi, LD_PRELOAD"
LD_PRELOAD="$lib" "$scratch/abi"
step "threads, linked"
"$scratch/threads_linked"
step "threads, LD_PRELOAD"
LD_PRELOAD="$lib" "$scratch/threads"
step "threads, LD_PRELOAD with a second-level pthread key"
LD_PRELOAD="$lib $scratch/keys.so" "$scratch/threads"

step "python3 under LD_PRELOAD"
cat > "$scratch/work.py" <<'EOF'
import json, os, sqlite3, threading, hashlib
docs = [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(60000)]
text = json.dumps(docs, sort_keys=True)
db = sqlite3.connect(":memory:")
db.execute("create table t (id integer primary key, name text, body text)")
db.executemany("insert into t values (?, ?, ?)", ((d["id"], d["name"], json.dumps(d)) for d in docs))
rows = db.execute("select count(*), sum(length(body)), max(name) from t where id % 3 = 0").fetchone()
out = []
def work(k):
    s = sorted(("%d-%s" % (i * k % 997, "x" * (i % 50)) for i in range(40000)))
    out.append(hashlib.sha256("".join(s).encode()).hexdigest())
ts = [threading.Thread(target=work, args=(k,)) for k in range(1, 7)]
[t.start() for t in ts]
[t.join() for t in ts]
pid = os.fork()
if pid == 0:
    os._exit(0 if len(json.loads(text)) == 60000 else 1)
_, status = os.waitpid(pid, 0)
print(hashlib.sha256(text.encode()).hexdigest(), rows, sorted(out), status)
EOF
want="$(python3 "$scratch/work.py")"
got="$(LD_PRELOAD="$lib" python3 "$scratch/work.py")"
[ "$want" = "$got" ] || { echo "python output differs:"; echo "$want"; echo "$got"; exit 1; }

step "sqlite3 shell under LD_PRELOAD"
sql="create table t(a integer primary key, b text);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000)
insert into t select x, printf('%08d-%s', x * 7919 % 200000, hex(x * x)) from c;
create index tb on t(b);
select count(*), min(b), max(b), sum(length(b)) from t;
select b from t order by b limit 3 offset 100000;"
want="$(echo "$sql" | sqlite3 :memory:)"
got="$(echo "$sql" | LD_PRELOAD="$lib" sqlite3 :memory:)"
[ "$want" = "$got" ] || { echo "sqlite3 output differs"; exit 1; }

step "done"
echo "preload: 7 passed, 0 failed"
