"""Shared parts of scripts/mimalloc-bench and scripts/c-programs: the allocators
(as LD_PRELOAD libraries), building ours, timing a process with /usr/bin/time -v,
medians, geomeans, the tables and the BENCH lines."""

import math
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = os.path.join(ROOT, "preload")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
ALLOCATORS = {
    "ours": os.path.join(PRELOAD, "target", "release", "librustydb_malloc.so"),
    "mimalloc": f"{LIBDIR}/libmimalloc.so.2",
    "jemalloc": f"{LIBDIR}/libjemalloc.so.2",
    "tcmalloc": f"{LIBDIR}/libtcmalloc_minimal.so.4",
    "glibc": None,
}
# Built only with --initial-exec: the same library with the initial-exec TLS
# model (rustc's `-Z tls-model`, through RUSTC_BOOTSTRAP on stable), as C
# allocators build their thread-locals; see preload/README section in README.md.
OURS_IE = os.path.join(PRELOAD, "target-ie", "release", "librustydb_malloc.so")
PEERS = ["mimalloc", "jemalloc", "tcmalloc", "glibc"]


def build_ours(initial_exec=False):
    print("# building preload/ (librustydb_malloc.so) ...", file=sys.stderr, flush=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=PRELOAD, check=True)
    if initial_exec:
        env = dict(os.environ, RUSTC_BOOTSTRAP="1", RUSTFLAGS="-Z tls-model=initial-exec",
                   CARGO_TARGET_DIR=os.path.join(PRELOAD, "target-ie"))
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=PRELOAD, check=True,
                       env=env)


def select_allocators(spec, initial_exec):
    table = dict(ALLOCATORS)
    if initial_exec:
        table = {"ours": table["ours"], "ours-ie": OURS_IE,
                 **{k: v for k, v in table.items() if k != "ours"}}
    names = spec.split(",") if spec else list(table)
    out = {}
    for n in names:
        lib = table[n]
        if lib and not os.path.exists(lib):
            print(f"# {n}: {lib} not installed, skipped", file=sys.stderr)
            continue
        out[n] = lib
    if "ours" not in out:
        sys.exit("ours must be among the allocators")
    return out


def preload_env(lib, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if lib:
        env["LD_PRELOAD"] = lib
    if extra:
        env.update(extra)
    return env


def parse_time_v(text):
    r = {}
    keys = {"Elapsed (wall clock) time": "wall", "Maximum resident set size": "rss_kib",
            "User time (seconds)": "user", "System time (seconds)": "sys"}
    for line in text.splitlines():
        line = line.strip()
        for key, name in keys.items():
            if line.startswith(key):
                v = line.rsplit(": ", 1)[1].strip()
                if name == "wall":
                    secs = 0.0
                    for x in v.split(":"):
                        secs = secs * 60 + float(x)
                    r[name] = secs
                else:
                    r[name] = float(v)
    return r


def timed(cmd, env, cwd, tfile, stdin=None, timeout=900):
    """Runs `cmd` under /usr/bin/time -v; returns (CompletedProcess, figures)."""
    if os.path.exists(tfile):
        os.remove(tfile)
    p = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, stdin=stdin,
                       capture_output=True, env=env, cwd=cwd, timeout=timeout)
    t = parse_time_v(open(tfile).read()) if os.path.exists(tfile) else {}
    return p, t


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and not math.isnan(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    glibc = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "glibc": glibc.splitlines()[0].split()[-1] if glibc else "?"}


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def medians(samples):
    med = {}
    for key, ss in samples.items():
        med[key] = {m: (statistics.median(x[m] for x in ss) if ss else None)
                    for m in ("time", "rss_kib", "cpu")}
    return med


def report(suite, med, names, allocs, markdown, baseline="mimalloc", best_of_peers=False):
    """Tables of time and peak RSS (ours ÷ each peer, ÷ best), geomeans ÷ baseline,
    BENCH lines (stdout). "Best" is the lowest of all allocators (ours included), or
    of the peers only with `best_of_peers`. Returns {(metric, allocator): geomean}."""
    ours = "ours"
    peers = [a for a in allocs if a != ours]
    gm = {}
    for key, label, unit in (("time", "time", "s"), ("cpu", "cpu time (user+sys)", "s"),
                             ("rss_kib", "peak RSS", "MiB")):
        scale = (lambda v: v / 1024) if key == "rss_kib" else (lambda v: v)
        print()
        print(f"{label} ({unit}; medians)")
        print(f"{'test':<18}" + "".join(f"{a:>10}" for a in allocs) +
              "".join(f"{'/' + p:>11}" for p in peers) + f"{'/best':>8}")
        rows = []
        for n in names:
            vals = {a: med[(n, a)][key] for a in allocs}
            if any(v is None for v in vals.values()):
                print(f"{n:<18} (missing figures)")
                continue
            best = min(v for a, v in vals.items()
                       if a != "ours-ie" and not (best_of_peers and a == ours))
            rs = {p: vals[ours] / vals[p] if vals[p] else float("nan") for p in peers}
            rbest = vals[ours] / best if best else float("nan")
            print(f"{n:<18}" + "".join(f"{scale(vals[a]):>10.3f}" for a in allocs) +
                  "".join(f"{rs[p]:>11.3f}" for p in peers) + f"{rbest:>8.3f}")
            rows.append((n, vals, rs, rbest))
        for n, vals, rs, _ in rows:
            for p in peers:
                print(f"BENCH {suite}/{n}/{key} ours={scale(vals[ours]):.4g}{unit} "
                      f"{p}={scale(vals[p]):.4g}{unit} ratio={rs[p]:.3f}")
        base = baseline if baseline in allocs else peers[0]
        for a in allocs:
            gm[(key, a)] = geomean([r[1][a] / r[1][base] for r in rows if r[1][base]])
        print(f"geomean ÷ {base}: " + "  ".join(f"{a} {gm[(key, a)]:.3f}" for a in allocs))
        if any(r[3] == r[3] for r in rows):  # NaN (a zero best) is left out
            worst = max((r for r in rows if r[3] == r[3]), key=lambda r: r[3])
            print(f"worst ours ÷ best: {worst[0]} {worst[3]:.3f}")
        for p in peers:
            print(f"BENCH {suite}/geomean/{key} ours={gm[(key, ours)]:.3f}x "
                  f"{p}={gm[(key, p)]:.3f}x ratio={gm[(key, ours)] / gm[(key, p)]:.3f}")
        if markdown:
            print()
            print("| test | " + " | ".join(allocs) + " | ours ÷ best |")
            print("|---|" + "---:|" * (len(allocs) + 1))
            for n, vals, rs, rbest in rows:
                print(f"| {n} | " + " | ".join(f"{scale(vals[a]):.3f}" for a in allocs) +
                      f" | {rbest:.2f} |")
            print(f"| **geomean ÷ {base}** | " +
                  " | ".join(f"{gm[(key, a)]:.3f}" for a in allocs) + " | |")
    return gm
