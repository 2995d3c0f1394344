#!/usr/bin/env python3
"""S3-FIFO exactly as Algorithm 1 of the paper, an independent third implementation.

Yang, Zhang, Qiu, Yue, Vinayak: "FIFO queues are all you need for cache
eviction", SOSP 2023, Algorithm 1 (written from the pseudo-code alone, not
from libCacheSim or this crate):

    READ(x):   hit -> x.freq = min(x.freq + 1, 3); miss -> INSERT(x)
    INSERT(x): while cache full: EVICT()
               x in G ? insert x at head of M : insert x at head of S
    EVICT():   S.size >= 10 % of the cache ? EVICTS() : EVICTM()
    EVICTS():  until one object left S for G: t = tail of S;
               t.freq > 1 ? (move t to M; M full ? EVICTM()) : (t to G)
    EVICTM():  until one object left M: t = tail of M;
               t.freq > 0 ? (t to head of M, t.freq -= 1) : (evict t)

G holds the ids of as many objects as M (90 % of the cache), FIFO.
`--warmup-to-main` adds libCacheSim's later change (S3FIFO.c since Dec 2024):
while nothing has been evicted yet and S holds its 10 %, new objects go to M.

Usage: s3fifo_paper.py [--warmup-to-main] TRACE SIZE[,SIZE...]
TRACE: one integer key per line (plain or .gz; '#', '*' and blank lines
skipped) or an oracleGeneral file (*.oracleGeneral*, *.bin). SIZE: frames,
or N% of the distinct keys (truncated). Prints `<size> <frames> <hit %>`.
"""
import gzip
import struct
import sys
from collections import OrderedDict, deque


def read_trace(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    name = path.lower().removesuffix(".gz")
    if name.endswith(".bin") or ".oraclegeneral" in name:
        with opener(path, "rb") as f:
            data = f.read()
        return [struct.unpack_from("<Q", data, i + 4)[0] for i in range(0, len(data) - 23, 24)]
    keys = []
    with opener(path, "rt") as f:
        for line in f:
            s = line.strip()
            if s and s != "*" and not s.startswith("#"):
                keys.append(int(s, 0))
    return keys


def s3fifo(trace, size, warmup_to_main=False):
    small_cap = int(size * 0.10)
    main_cap = size - small_cap
    ghost_cap = main_cap
    S, M = deque(), deque()        # head = left, tail = right
    freq = {}                      # resident objects -> freq
    where = {}                     # resident objects -> "S" / "M"
    G = OrderedDict()              # ghost ids, oldest first
    evicted_any = False
    hits = 0

    def to_ghost(x):
        G[x] = None
        if len(G) > ghost_cap:
            G.popitem(last=False)

    def evict_m():
        while M:
            t = M.pop()
            if freq[t] > 0:
                freq[t] -= 1
                M.appendleft(t)
            else:
                del freq[t], where[t]
                return

    def evict_s():
        while S:
            t = S.pop()
            if freq[t] > 1:
                M.appendleft(t)
                where[t] = "M"
                if len(M) >= main_cap:
                    evict_m()
            else:
                del freq[t], where[t]
                to_ghost(t)
                return

    for x in trace:
        if x in freq:
            hits += 1
            freq[x] = min(freq[x] + 1, 3)
            continue
        while len(S) + len(M) >= size:
            evicted_any = True
            if len(S) >= small_cap and S:
                evict_s()
            else:
                evict_m()
        freq[x] = 0
        if x in G:
            del G[x]
            M.appendleft(x)
            where[x] = "M"
        elif warmup_to_main and not evicted_any and len(S) >= small_cap:
            M.appendleft(x)
            where[x] = "M"
        else:
            S.appendleft(x)
            where[x] = "S"
    return 100.0 * hits / len(trace)


def main():
    args = sys.argv[1:]
    warm = "--warmup-to-main" in args
    args = [a for a in args if a != "--warmup-to-main"]
    if len(args) != 2:
        sys.exit(__doc__)
    trace = read_trace(args[0])
    distinct = len(set(trace))
    for s in args[1].split(","):
        frames = int(distinct * float(s[:-1]) / 100) if s.endswith("%") else int(s)
        print(f"{s} {frames} {s3fifo(trace, max(frames, 1), warm):.2f}", flush=True)


if __name__ == "__main__":
    main()
