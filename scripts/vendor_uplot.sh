#!/usr/bin/env bash
# Re-vendors uPlot (the dashboard's charting library) from the npm registry at
# the pinned version: its minified IIFE build, its stylesheet and its licence,
# into examples/rustydb_server/observe/dashboard/assets/vendor/uplot/.
# `bash scripts/vendor_uplot.sh` checks the committed files against the
# registry's; `--write` replaces them.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.6.32
dest=examples/rustydb_server/observe/dashboard/assets/vendor/uplot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "uplot@$version" --silent >/dev/null && tar xzf "uplot-$version.tgz")
for f in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
    if [ "${1:-}" = "--write" ]; then
        cp "$tmp/package/$f" "$dest/$(basename "$f")"
    elif ! cmp -s "$tmp/package/$f" "$dest/$(basename "$f")"; then
        echo "differs from uplot@$version: $dest/$(basename "$f")"
        exit 1
    fi
done
echo "uplot@$version: $dest is the registry's"
