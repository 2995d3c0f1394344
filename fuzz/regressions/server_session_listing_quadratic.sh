#!/usr/bin/env bash
# FIXED: ctx::Snapshot computes every subtree once per listing and the contexts
# tree walks id/children indexes, so listings are linear in the number of
# contexts. The script stays as a check; it has not been re-run against the fix.
#
# Not a crash: a cost the server_request fuzz target ran into. Its exec rate
# fell from ~6000/s to ~175/s over 10 minutes (the process-wide app keeps every
# session and open transaction); a perf sample after 60 s put
# ctx::subtree_reserved (under Session::info, Txn::info, the contexts handler)
# first among the server's own frames. How much of the decay it explains is not
# measured: bounding the session names alone did not stop it, and the machine
# was shared with compilations.
#
# Any token holder can open up to 10 000 sessions (one per X-Session-Id name)
# and up to 10 000 open transactions; the listings (GET /api/v1/sessions,
# /api/v1/stats/sessions, /api/v1/transactions, /api/v1/memory/contexts) call
# ctx::subtree_reserved once per session / transaction, and it scans every
# memory context each time: sessions x contexts work per request (~10^8 steps
# at the caps). Found by reading the profile, not fixed here (server code).
#
# Usage: start the server (cargo run --release --example rustydb_server --
#   --admin-token T), then TOKEN=T N=5000 this script; compare the two timings.
set -euo pipefail
base=${BASE:-http://127.0.0.1:8080}
auth="Authorization: Bearer ${TOKEN:?set TOKEN to an admin or readonly token}"
t() { /usr/bin/time -f "%e s" curl -s -o /dev/null -H "$auth" "$base/api/v1/stats/sessions"; }
echo "sessions listing with few sessions:"; t
for i in $(seq 1 ${N:-5000}); do
    curl -s -o /dev/null -H "$auth" -H "X-Session-Id: s$i" "$base/api/v1/pools"
done
echo "sessions listing with ${N:-5000} more sessions:"; t
