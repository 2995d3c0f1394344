#!/usr/bin/env python3
"""Hit ratios of libCacheSim's policies on an oracleGeneral trace.

Usage: libcachesim_hits.py TRACE CACHE_SIZE
Prints one line per policy: `<name> <hit ratio in %>`, or `error <reason>`.
Used by `benches/buffer_pool.rs` (pip install libcachesim).
"""
import sys

try:
    import libcachesim as lcs
except Exception as e:  # not installed: the bench prints NA
    print(f"error {type(e).__name__}")
    sys.exit(0)

trace, size = sys.argv[1], int(sys.argv[2])
reader = lcs.TraceReader(trace, lcs.TraceType.ORACLE_GENERAL_TRACE)
policies = [
    ("lru", lambda c: lcs.LRU(c)),
    ("clock", lambda c: lcs.Clock(c)),
    ("lru-k", lambda c: lcs.LRUK(c, k=2)),
    ("arc", lambda c: lcs.ARC(c)),
    ("2q", lambda c: lcs.TwoQ(c, a_in_size_ratio=0.25, a_out_size_ratio=0.5)),
    ("sieve", lambda c: lcs.Sieve(c)),
    ("s3-fifo", lambda c: lcs.S3FIFO(c)),
    ("opt", lambda c: lcs.Belady(c)),
]
for name, make in policies:
    try:
        miss, _ = make(size).process_trace(reader)
        print(f"{name} {100.0 * (1.0 - miss):.4f}", flush=True)
    except Exception as e:
        print(f"{name} NA {type(e).__name__}", flush=True)
