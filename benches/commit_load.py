#!/usr/bin/env python3
"""Commit load for benches/server_commits.sh: N clients, each committing one
INSERT per transaction as fast as it can, for a fixed time; prints the
commits per second that were acknowledged.

  commit_load.py rustydb <port> <token> <clients> <seconds> <first_id>
  commit_load.py sqlite <db file> <clients> <seconds> <first_id>

rustydb: each client is one keep-alive HTTP connection posting
`INSERT INTO c VALUES (<id>, '<100 bytes>')` to /api/v1/query (autocommit:
acknowledged once its commit record is durable in the server's log).
sqlite: each client is one connection to a database in WAL mode with
synchronous=FULL, autocommit, executing the same INSERT (acknowledged once
SQLite has synced its WAL); writers wait for each other with a busy timeout.
Python's sqlite3 releases the GIL while SQLite runs, so the syncs overlap
with the other clients' work as the server's do.
"""
import http.client
import json
import sqlite3
import sys
import threading
import time

PAYLOAD = "p" * 100


def rustydb_client(port, token, deadline, first, out, i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    n = 0
    errors = 0
    k = first
    while time.monotonic() < deadline:
        body = json.dumps({"sql": "INSERT INTO c VALUES (%d, '%s')" % (k, PAYLOAD)})
        k += 1
        conn.request("POST", "/api/v1/query", body, headers)
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            n += 1
        else:
            errors += 1
    out[i] = (n, errors)


def sqlite_client(path, deadline, first, out, i):
    db = sqlite3.connect(path, timeout=120, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=FULL")
    n = 0
    k = first
    while time.monotonic() < deadline:
        db.execute("INSERT INTO c VALUES (?, ?)", (k, PAYLOAD))
        k += 1
        n += 1
    db.close()
    out[i] = (n, 0)


def main():
    kind = sys.argv[1]
    if kind == "rustydb":
        port, token = int(sys.argv[2]), sys.argv[3]
        clients, seconds, first = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    else:
        path = sys.argv[2]
        clients, seconds, first = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
        db = sqlite3.connect(path, isolation_level=None)
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        db.execute("CREATE TABLE IF NOT EXISTS c (id INTEGER PRIMARY KEY, v TEXT)")
        db.close()
    out = [None] * clients
    start = time.monotonic()
    deadline = start + seconds
    threads = []
    for i in range(clients):
        base = first + i * 10_000_000  # < first + 1e9 for 64 clients: runs never collide
        if kind == "rustydb":
            t = threading.Thread(target=rustydb_client, args=(port, token, deadline, base, out, i))
        else:
            t = threading.Thread(target=sqlite_client, args=(path, deadline, base, out, i))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    n = sum(o[0] for o in out)
    errors = sum(o[1] for o in out)
    print("%.1f %d" % (n / elapsed, errors))


main()
