#!/usr/bin/env python3
"""Hit ratios of every buffer-pool policy on real and generated traces, beside
Belady's OPT and libCacheSim's implementations of the same policies.

Usage:
    cargo build --release --example trace_replay
    pip install libcachesim          # optional: the libCacheSim columns
    scripts/policy_traces.py [--caffeine DIR] [--work DIR] [--sizes 5%,10%,25%]
                             [--replay BIN] [--traces NAME,...]

Real traces: the block traces of the LIRS paper (Jiang & Zhang, SIGMETRICS
2002: cpp, cs, gli, ps, sprite, multi1-3, 2_pools and their loop, scan,
zigzag, backf), as Caffeine's simulator redistributes them
(github.com/ben-manes/caffeine, simulator/src/main/resources/.../parser/lirs).
`--caffeine DIR` takes a checkout (or a bare git directory) of that
repository; without it the script makes a sparse shallow clone under the work
directory (`git clone`, network needed). Nothing is written outside
`--work` (default /tmp/policy_traces): the traces are not ours to commit.

Generated traces (seeded, written to the work directory): `gen-loop` (a loop
over 4 000 pages: 20x, 10x and 4x the pool at 5 / 10 / 25 %), `gen-scan`
(that loop interleaved 1:1 with uniform hits on 200 hot pages), `gen-zigzag`
(sweeps over 4 000 pages, forward then backward: LRU is optimal) and
`gen-zipf` (Zipf 0.9 over 20 000 pages, 400 000 requests).

Every trace is replayed by `trace_replay --json --cooling 0` (each policy
alone, no cooling stage) and once more with the pool as shipped (the default
policy and the builder's 2 % cooling stage). libCacheSim runs at the same
frame counts on an oracleGeneral copy. S3-FIFO is also run by
`scripts/s3fifo_paper.py` (the paper's Algorithm 1, with and without
libCacheSim's warm-up), the third implementation. Output: Markdown tables on
stdout, the raw results as JSON in the work directory.
"""
import argparse
import bisect
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIRS_DIR = "simulator/src/main/resources/com/github/benmanes/caffeine/cache/simulator/parser/lirs"
REAL = ["2_pools", "backf", "cpp", "cs", "gli", "loop", "multi1", "multi2",
        "multi3", "ps", "scan", "sprite", "zigzag"]
GEN = ["gen-loop", "gen-scan", "gen-zigzag", "gen-zipf"]
OURS = ["lru", "clock", "lru-k", "arc", "2q", "sieve", "s3-fifo", "lirs",
        "clock-pro", "w-tinylfu", "adaptive"]
# libCacheSim's twins (the python binding's class names).
LCS = {"lru": "LRU", "arc": "ARC", "s3-fifo": "S3FIFO", "lirs": "LIRS",
       "clock-pro": "ClockPro", "w-tinylfu": "WTinyLFU", "sieve": "Sieve",
       "opt": "Belady"}


def fetch_lirs(caffeine, work):
    out = os.path.join(work, "lirs")
    os.makedirs(out, exist_ok=True)
    if all(os.path.exists(os.path.join(out, f"{t}.trace.gz")) for t in REAL):
        return out
    if caffeine is None:
        caffeine = os.path.join(work, "caffeine")
        if not os.path.exists(caffeine):
            subprocess.run(["git", "clone", "--depth", "1", "--filter=blob:none",
                            "--sparse", "https://github.com/ben-manes/caffeine",
                            caffeine], check=True)
            subprocess.run(["git", "-C", caffeine, "sparse-checkout", "set",
                            LIRS_DIR], check=True)
    if os.path.isdir(os.path.join(caffeine, LIRS_DIR)):
        for t in REAL:
            with open(os.path.join(caffeine, LIRS_DIR, f"{t}.trace.gz"), "rb") as s, \
                    open(os.path.join(out, f"{t}.trace.gz"), "wb") as d:
                d.write(s.read())
    else:  # a bare git directory
        for t in REAL:
            data = subprocess.run(["git", f"--git-dir={caffeine}", "show",
                                   f"HEAD:{LIRS_DIR}/{t}.trace.gz"],
                                  check=True, capture_output=True).stdout
            with open(os.path.join(out, f"{t}.trace.gz"), "wb") as d:
                d.write(data)
    return out


def generate(name):
    rng = random.Random(19)
    n = 4000
    if name == "gen-loop":
        return [p for _ in range(50) for p in range(n)]
    if name == "gen-scan":
        out = []
        for _ in range(25):
            for p in range(n):
                out.append(p)
                out.append(n + rng.randrange(200))
        return out
    if name == "gen-zigzag":
        up = list(range(n))
        return [p for i in range(50) for p in (up if i % 2 == 0 else up[::-1])]
    if name == "gen-zipf":
        pages, alpha = 20000, 0.9
        cdf, acc = [], 0.0
        for k in range(1, pages + 1):
            acc += 1.0 / k ** alpha
            cdf.append(acc)
        perm = list(range(pages))
        rng.shuffle(perm)
        return [perm[min(bisect.bisect_left(cdf, rng.random() * acc), pages - 1)]
                for _ in range(400000)]
    raise ValueError(name)


def read_keys(path):
    op = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    keys = []
    with op(path, "rt") as f:
        for line in f:
            s = line.strip()
            if s and s != "*" and not s.startswith("#"):
                keys.append(int(s, 0))
    return keys


def write_oracle(keys, path):
    """libCacheSim's oracleGeneral: <u32 time, u64 id, u32 size, i64 next>."""
    nxt, last = [-1] * len(keys), {}
    for i in range(len(keys) - 1, -1, -1):
        nxt[i] = last.get(keys[i], -1)
        last[keys[i]] = i
    with open(path, "wb") as f:
        for i, (k, n) in enumerate(zip(keys, nxt)):
            f.write(struct.pack("<IQIq", i, k + 1, 1, n))


def replay(binary, trace, sizes, shipped):
    cmd = [binary, "--json", "--sizes", sizes, trace]
    cmd += ["--policies", "adaptive", "--no-opt"] if shipped else ["--cooling", "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["traces"][0]


def lcs_hits(oracle, frames):
    try:
        import libcachesim as lcs
    except ImportError:
        return {}
    res = {}
    for ours, cls in LCS.items():
        reader = lcs.TraceReader(oracle, lcs.TraceType.ORACLE_GENERAL_TRACE)
        try:
            miss, _ = getattr(lcs, cls)(frames).process_trace(reader)
            res[ours] = round(100.0 * (1.0 - miss), 2)
        except Exception:  # noqa: BLE001 - a policy the binding lacks
            pass
    return res


def paper_s3fifo(trace, sizes):
    res = {}
    for flag, key in (([], "paper"), (["--warmup-to-main"], "paper+warmup")):
        out = subprocess.run([sys.executable, os.path.join(HERE, "s3fifo_paper.py"),
                              *flag, trace, sizes], check=True, capture_output=True,
                             text=True).stdout
        for line in out.split("\n"):
            if line:
                s, _, h = line.split()
                res.setdefault(s, {})[key] = float(h)
    return res


def fmt(x):
    return "—" if x is None else f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--caffeine", help="Caffeine checkout or bare git dir")
    ap.add_argument("--work", default="/tmp/policy_traces")
    ap.add_argument("--sizes", default="5%,10%,25%")
    ap.add_argument("--replay", default=os.path.join(
        HERE, "..", "target", "release", "examples", "trace_replay"))
    ap.add_argument("--traces", help="only these (names as in the tables)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    lirs = fetch_lirs(a.caffeine, a.work)
    names = REAL + GEN
    if a.traces:
        names = [n for n in names if n in a.traces.split(",")]
    rows = []
    for name in names:
        t0 = time.time()
        if name in GEN:
            path = os.path.join(a.work, f"{name}.txt")
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write("\n".join(map(str, generate(name))) + "\n")
        else:
            path = os.path.join(lirs, f"{name}.trace.gz")
        oracle = os.path.join(a.work, f"{name}.oracleGeneral.bin")
        if not os.path.exists(oracle):
            write_oracle(read_keys(path), oracle)
        pure = replay(a.replay, path, a.sizes, False)
        shipped = replay(a.replay, path, a.sizes, True)
        paper = paper_s3fifo(path, a.sizes) if name in ("loop", "scan", "gen-loop", "gen-scan") else {}
        for r, s in zip(pure["results"], shipped["results"]):
            rows.append({"trace": name, "size": r["size"], "frames": r["frames"],
                         "requests": pure["requests"], "distinct": pure["distinct"],
                         "ours": r["hit_ratio"], "shipped": s["hit_ratio"]["adaptive"],
                         "lcs": lcs_hits(oracle, r["frames"]),
                         "paper": paper.get(r["size"], {})})
        print(f"{name}: {pure['requests']} requests, {pure['distinct']} pages, "
              f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    report(rows)


def report(rows):
    print("| trace | size | " + " | ".join(OURS) + " | shipped | OPT |")
    print("|---|---|" + "---|" * (len(OURS) + 2))
    groups = [("real", [r for r in rows if not r["trace"].startswith("gen-")]),
              ("generated", [r for r in rows if r["trace"].startswith("gen-")]),
              ("all", rows)]
    for r in rows:
        best = max(r["ours"][p] for p in OURS)
        cells = [f"**{fmt(r['ours'][p])}**" if r["ours"][p] == best else fmt(r["ours"][p])
                 for p in OURS]
        print(f"| {r['trace']} | {r['size']} | " + " | ".join(cells)
              + f" | {fmt(r['shipped'])} | {fmt(r['ours']['opt'])} |")
    for g, rs in groups:
        if rs:
            mean = [sum(r["ours"][p] for r in rs) / len(rs) for p in OURS + ["opt"]]
            sh = sum(r["shipped"] for r in rs) / len(rs)
            print(f"| **mean, {g}** ({len(rs)}) | | " + " | ".join(fmt(m) for m in mean[:-1])
                  + f" | {fmt(sh)} | {fmt(mean[-1])} |")
    print()
    # Ours beside libCacheSim's twins.
    twins = [p for p in LCS if p != "opt"]
    print("| trace | size | " + " | ".join(f"{p} ours / lcs" for p in twins)
          + " | S3-FIFO paper / +warm-up | OPT ours / lcs |")
    print("|---|---|" + "---|" * (len(twins) + 2))
    for r in rows:
        cells = [f"{fmt(r['ours'].get(p))} / {fmt(r['lcs'].get(p))}" for p in twins]
        pp = r["paper"]
        paper = f"{fmt(pp.get('paper'))} / {fmt(pp.get('paper+warmup'))}" if pp else ""
        print(f"| {r['trace']} | {r['size']} | " + " | ".join(cells) + f" | {paper} | "
              f"{fmt(r['ours']['opt'])} / {fmt(r['lcs'].get('opt'))} |")
    for g, rs in groups:
        if rs and all(r["lcs"] for r in rs):
            cells = [f"{fmt(sum(r['ours'][p] for r in rs) / len(rs))} / "
                     f"{fmt(sum(r['lcs'].get(p, 0) for r in rs) / len(rs))}" for p in twins]
            print(f"| **mean, {g}** | | " + " | ".join(cells) + " | | |")
    print()
    # The default's targets.
    worst = min(rows, key=lambda r: r["ours"]["adaptive"] - r["ours"]["lru"])
    worst_s = min(rows, key=lambda r: r["shipped"] - r["ours"]["lru"])
    real = groups[0][1]
    if real:
        m = {p: sum(r["ours"][p] for r in real) / len(real) for p in ("adaptive", "lirs", "lru", "opt")}
        print(f"default (adaptive) on the real traces: mean {m['adaptive']:.2f} vs LIRS "
              f"{m['lirs']:.2f}, LRU {m['lru']:.2f}, OPT {m['opt']:.2f}")
    print(f"worst cell against LRU: adaptive {worst['trace']} {worst['size']} "
          f"{worst['ours']['adaptive'] - worst['ours']['lru']:+.2f} pt; shipped "
          f"{worst_s['trace']} {worst_s['size']} {worst_s['shipped'] - worst_s['ours']['lru']:+.2f} pt")


if __name__ == "__main__":
    main()
